// The correctors of score_sde in one translation unit: Langevin dynamics with the step
// from the signal-to-noise ratio of the batch-mean norms, annealed Langevin (ALD) with the
// step from the marginal std, and none. alpha = alphas_i (DDPM) for VP/sub-VP, 1 for VE.
#include <cmath>

#include "scorch/core/error.h"
#include "scorch/core/names.h"
#include "scorch/sampling/sampler.h"
#include "scorch/sde/variants.h"

namespace scorch::sampling {

namespace {

using sde::per_item;

torch::Tensor ddpm_alpha(const sde::SDE& s, const torch::Tensor& t) {
  if (auto* vp = dynamic_cast<const sde::VPSDE*>(&s)) {  // VP and sub-VP
    return vp->alphas().index_select(0, s.step_index(t)).to(torch::kFloat32);
  }
  return torch::ones({t.size(0)}, t.options().dtype(torch::kFloat32));
}

class Langevin final : public Corrector {
 public:
  Langevin(const sde::SDE& s, const models::ScoreFn& f, double snr, int64_t n, bool annealed)
      : s_(s), score_(f), snr_(snr), n_(n), annealed_(annealed) {}
  StepResult step(const torch::Tensor& x_in, double t_now, const Noise& noise) override {
    const auto t = time_vector(t_now, x_in);
    auto alpha = ddpm_alpha(s_, t);
    torch::Tensor x = x_in, x_mean = x_in;
    for (int64_t i = 0; i < n_; ++i) {
      auto grad = score_(x, t);
      auto z = noise.randn(x.sizes());
      torch::Tensor step;
      if (annealed_) {
        auto std = s_.sigma(t);
        step = (snr_ * std).pow(2) * 2.0 * alpha;  // [B]
      } else {
        auto grad_norm = grad.flatten(1).norm(2, 1).mean();
        auto noise_norm = z.flatten(1).norm(2, 1).mean();
        step = (snr_ * noise_norm / grad_norm).pow(2) * 2.0 * alpha;  // [B]
      }
      x_mean = x + per_item(step, x) * grad;
      x = x_mean + per_item((2.0 * step).sqrt(), x) * z;
    }
    return {x, x_mean};
  }

 private:
  const sde::SDE& s_;
  const models::ScoreFn& score_;
  double snr_;
  int64_t n_;
  bool annealed_;
};

class NoneCorrector final : public Corrector {
 public:
  StepResult step(const torch::Tensor& x, double, const Noise&) override { return {x, x}; }
};

}  // namespace

std::unique_ptr<Corrector> make_corrector(const std::string& name, const sde::SDE& s, const models::ScoreFn& score,
                                          double snr, int64_t n_steps) {
  if (name == "langevin") return std::make_unique<Langevin>(s, score, snr, n_steps, false);
  if (name == "ald") return std::make_unique<Langevin>(s, score, snr, n_steps, true);
  if (name == "none") return std::make_unique<NoneCorrector>();
  SCORCH_THROW("corrector '{}' not found (sampling.corrector): valid are {}", name,
               names::joined(names::correctors(), ", "));
}

}  // namespace scorch::sampling
