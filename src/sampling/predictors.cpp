// The predictors of score_sde, each a few lines, kept in one translation unit (a torch TU
// costs ~25 s to compile): Euler-Maruyama on the reverse SDE, reverse diffusion on the
// reverse discretisation, ancestral sampling (SMLD for VE, DDPM for VP), and none.
#include <cmath>

#include "scorch/core/error.h"
#include "scorch/core/names.h"
#include "scorch/sampling/sampler.h"
#include "scorch/sde/variants.h"

namespace scorch::sampling {

namespace {

using sde::per_item;

class EulerMaruyama final : public Predictor {
 public:
  EulerMaruyama(const sde::SDE& s, const models::ScoreFn& f, bool pf) : s_(s), score_(f), pf_(pf) {}
  StepResult step(const torch::Tensor& x, double t_now, double t_next, const Noise& noise) override {
    const double dt = t_next - t_now;  // -1/N on score_sde's grid
    const auto t = time_vector(t_now, x);
    auto drift = s_.reverse_drift(x, t, score_(x, t), pf_);
    auto x_mean = x + drift * dt;
    if (pf_) return {x_mean, x_mean};
    auto g = s_.sde(x, t).second;
    return {x_mean + per_item(g, x) * std::sqrt(-dt) * noise.randn(x.sizes()), x_mean};
  }

 private:
  const sde::SDE& s_;
  const models::ScoreFn& score_;
  bool pf_;
};

class ReverseDiffusion final : public Predictor {
 public:
  ReverseDiffusion(const sde::SDE& s, const models::ScoreFn& f, bool pf) : s_(s), score_(f), pf_(pf) {}
  StepResult step(const torch::Tensor& x, double t_now, double, const Noise& noise) override {
    const auto t = time_vector(t_now, x);
    auto [f, G] = s_.reverse_discretize(x, t, score_(x, t), pf_);
    auto x_mean = x - f;
    if (pf_) return {x_mean, x_mean};
    return {x_mean + per_item(G, x) * noise.randn(x.sizes()), x_mean};
  }

 private:
  const sde::SDE& s_;
  const models::ScoreFn& score_;
  bool pf_;
};

class AncestralSampling final : public Predictor {
 public:
  AncestralSampling(const sde::SDE& s, const models::ScoreFn& f) : s_(s), score_(f) {
    ve_ = dynamic_cast<const sde::VESDE*>(&s);
    vp_ = dynamic_cast<const sde::VPSDE*>(&s);
    SCORCH_CHECK(ve_ || (vp_ && s.name() == "vpsde"),
                 "sampling.predictor = \"ancestral_sampling\" exists for vesde and vpsde only (got {})", s.name());
  }
  StepResult step(const torch::Tensor& x, double t_now, double, const Noise& noise) override {
    const auto t = time_vector(t_now, x);
    auto score = score_(x, t);
    auto z = noise.randn(x.sizes());
    if (ve_) {
      auto [sigma, prev] = ve_->sigma_pair(t);
      auto d = sigma * sigma - prev * prev;
      auto x_mean = x + score * per_item(d, x);
      auto std = (prev * prev * d / (sigma * sigma)).sqrt();
      return {x_mean + per_item(std, x) * z, x_mean};
    }
    auto beta = vp_->discrete_betas().index_select(0, s_.step_index(t)).to(torch::kFloat32);
    auto x_mean = (x + per_item(beta, x) * score) / per_item((1.0 - beta).sqrt(), x);
    return {x_mean + per_item(beta.sqrt(), x) * z, x_mean};
  }

 private:
  const sde::SDE& s_;
  const models::ScoreFn& score_;
  const sde::VESDE* ve_ = nullptr;
  const sde::VPSDE* vp_ = nullptr;
};

class NonePredictor final : public Predictor {
 public:
  StepResult step(const torch::Tensor& x, double, double, const Noise&) override { return {x, x}; }
};

}  // namespace

torch::Tensor time_vector(double t, const torch::Tensor& like) {
  return torch::full({like.size(0)}, t, like.options().dtype(torch::kFloat32));
}

std::unique_ptr<Predictor> make_predictor(const std::string& name, const sde::SDE& s, const models::ScoreFn& score,
                                          bool probability_flow) {
  if (name == "euler_maruyama") return std::make_unique<EulerMaruyama>(s, score, probability_flow);
  if (name == "reverse_diffusion") return std::make_unique<ReverseDiffusion>(s, score, probability_flow);
  if (name == "ancestral_sampling") {
    SCORCH_CHECK(!probability_flow, "ancestral_sampling has no probability-flow variant (sampling.probability_flow)");
    return std::make_unique<AncestralSampling>(s, score);
  }
  if (name == "none") return std::make_unique<NonePredictor>();
  SCORCH_THROW("predictor '{}' not found (sampling.predictor): valid are {}", name,
               names::joined(names::predictors(), ", "));
}

}  // namespace scorch::sampling
