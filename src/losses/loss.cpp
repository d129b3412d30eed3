// The loss factory: one small adapter per objective over the functions of dsm.h, ssm.h and
// discrete.h.
#include "scorch/losses/loss.h"

#include "scorch/core/error.h"
#include "scorch/core/names.h"
#include "scorch/losses/discrete.h"
#include "scorch/losses/dsm.h"
#include "scorch/losses/ssm.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/variants.h"

namespace scorch::losses {

namespace {

class Dsm final : public Loss {
 public:
  Dsm(const sde::SDE& s, DsmOptions o) : s_(s), o_(o) {}
  std::string name() const override { return "dsm"; }
  torch::Tensor per_item(models::ScoreNet& net, const LossInputs& in) const override {
    return dsm_loss_per_item(models::make_score_fn(net, s_, true, in.class_labels), s_, in.x0, in.t, in.z, o_);
  }

 private:
  const sde::SDE& s_;
  DsmOptions o_;
};

class Ssm final : public Loss {
 public:
  Ssm(const sde::SDE& s, DsmOptions o) : s_(s), o_(o) {}
  std::string name() const override { return "ssm"; }
  bool needs_projections() const override { return true; }
  torch::Tensor per_item(models::ScoreNet& net, const LossInputs& in) const override {
    SCORCH_CHECK(in.projections.defined(), "training.loss = \"ssm\" needs projection vectors in the batch");
    return ssm_loss_per_item(models::make_score_fn(net, s_, true, in.class_labels), s_, in.x0, in.t, in.z,
                             in.projections, o_);
  }

 private:
  const sde::SDE& s_;
  DsmOptions o_;
};

// SMLD (VE) and DDPM (VP): the network is called with the integer level as its noise level.
class Discrete final : public Loss {
 public:
  Discrete(const sde::SDE& s, bool reduce_mean) : s_(s), reduce_mean_(reduce_mean) {}
  std::string name() const override { return s_.name() == "vesde" ? "smld" : "ddpm"; }
  bool needs_levels() const override { return true; }
  torch::Tensor per_item(models::ScoreNet& net, const LossInputs& in) const override {
    OutputFn f = [&net, &in](const torch::Tensor& x, const torch::Tensor& level) {
      return net.forward(x, level, in.class_labels).to(torch::kFloat32);
    };
    if (auto* ve = dynamic_cast<const sde::VESDE*>(&s_)) {
      return smld_loss_per_item(f, *ve, in.x0, in.levels, in.z, reduce_mean_);
    }
    return ddpm_loss_per_item(f, dynamic_cast<const sde::VPSDE&>(s_), in.x0, in.levels, in.z, reduce_mean_);
  }

 private:
  const sde::SDE& s_;
  bool reduce_mean_;
};

}  // namespace

std::unique_ptr<Loss> make_loss(const Config& cfg, const sde::SDE& s) {
  const auto& tc = cfg.training;
  if (!tc.continuous) {
    SCORCH_CHECK(s.name() == "vesde" || s.name() == "vpsde",
                 "training.continuous = false trains SMLD (vesde) or DDPM (vpsde), not {}", s.name());
    return std::make_unique<Discrete>(s, tc.reduce_mean);
  }
  const DsmOptions o{tc.reduce_mean, tc.likelihood_weighting};
  if (tc.loss == "dsm") return std::make_unique<Dsm>(s, o);
  if (tc.loss == "ssm") return std::make_unique<Ssm>(s, o);
  SCORCH_THROW("loss '{}' not found (training.loss): valid are {}", tc.loss, names::joined(names::losses(), ", "));
}

}  // namespace scorch::losses
