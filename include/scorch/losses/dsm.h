// Continuous-time denoising score matching (Song et al. 2021, eq. 7; score_sde's losses.py,
// get_sde_loss_fn). The caller draws the times and the noise, so that they can be a
// function of global sample indices (the same result on 1 rank or 64) and so that tests
// can pass known values.
#pragma once
#include <torch/torch.h>

#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"

namespace scorch::losses {

constexpr double kTrainEps = 1e-5;  // t ~ U(eps, T)

struct DsmOptions {
  bool reduce_mean = false;           // mean over data dims, else 0.5 * sum
  bool likelihood_weighting = false;  // lambda = g^2 instead of sigma^2
};

// x0 [B,...] data, t [B] in (0, T], z [B,...] ~ N(0, I). Returns the batch-mean loss (scalar).
torch::Tensor dsm_loss(const models::ScoreFn& score, const sde::SDE& sde, const torch::Tensor& x0,
                       const torch::Tensor& t, const torch::Tensor& z, const DsmOptions& opt);

// Per-item loss [B] (before the batch mean).
torch::Tensor dsm_loss_per_item(const models::ScoreFn& score, const sde::SDE& sde, const torch::Tensor& x0,
                                const torch::Tensor& t, const torch::Tensor& z, const DsmOptions& opt);

}  // namespace scorch::losses
