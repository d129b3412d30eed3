// The training objective, chosen once from the config (`make_loss`): continuous-time
// denoising score matching (dsm.h) or sliced score matching (ssm.h) under `training.loss`,
// or, with training.continuous = false, the discrete SMLD (VE) / DDPM (VP) losses of
// discrete.h. The trainer hands it the network and one batch of inputs; the loss builds the
// score function (with the batch's class labels) itself.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "scorch/core/config.h"
#include "scorch/models/model.h"
#include "scorch/sde/sde.h"

namespace scorch::losses {

// One batch's inputs, all on the network's device. Shapes: x0, z, projections [B,...];
// t [B] float; levels int64 [B] (discrete losses); class_labels int64 [B] in [0, K] or
// undefined (unconditional network); projections undefined unless the loss needs them.
struct LossInputs {
  torch::Tensor x0, t, z, levels, class_labels, projections;
};

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;
  // Per-item losses [B].
  virtual torch::Tensor per_item(models::ScoreNet& net, const LossInputs& in) const = 0;
  // Whether the inputs need discrete levels / projection vectors (what the batch maker draws).
  virtual bool needs_levels() const { return false; }
  virtual bool needs_projections() const { return false; }
};

// `sde` must outlive the loss.
std::unique_ptr<Loss> make_loss(const Config& cfg, const sde::SDE& sde);

}  // namespace scorch::losses
