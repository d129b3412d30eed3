// Sliced score matching on the perturbed marginals (Song, Garg, Shi & Ermon 2019, "Sliced
// Score Matching", the variance-reduced form SSM-VR): for x_t = alpha(t) x_0 + sigma(t) z,
//   J(t) = E_v [ v^T grad_x s(x_t, t) v ] + 1/2 || s(x_t, t) ||^2,
// whose minimiser over s is the score of p_t itself, with no access to the kernel's score
// (unlike DSM). v is a Rademacher or Gaussian projection; v^T grad_x s v is one
// vector-Jacobian product of s . v (double backward). Weighted like DSM: sigma(t)^2, or g(t)^2
// with likelihood weighting.
#pragma once
#include <torch/torch.h>

#include "scorch/losses/dsm.h"

namespace scorch::losses {

// x0 [B,...] data, t [B], z [B,...] ~ N(0, I) (the perturbation), v [B,...] projections.
// Per-item loss [B] (mean over data dims with opt.reduce_mean, else the sum). The graph is
// kept (create_graph) so the loss can be back-propagated into the network.
torch::Tensor ssm_loss_per_item(const models::ScoreFn& score, const sde::SDE& sde, const torch::Tensor& x0,
                                const torch::Tensor& t, const torch::Tensor& z, const torch::Tensor& v,
                                const DsmOptions& opt);

}  // namespace scorch::losses
