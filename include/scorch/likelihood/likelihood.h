// Exact-likelihood evaluation through the probability-flow ODE: integrate x and
// log-density change from eps to T, with the divergence of the drift estimated by
// Hutchinson-Skilling (one fixed noise draw per item for the whole solve).
#pragma once
#include <torch/torch.h>

#include "scorch/models/score_fn.h"
#include "scorch/sampling/rk45.h"
#include "scorch/sde/sde.h"

namespace scorch::likelihood {

constexpr double kLikelihoodEps = 1e-5;

struct LogpResult {
  torch::Tensor logp;  // [B] float64 log p(x) in nats, in the space of x (model input)
  torch::Tensor z;     // [B,...] the latent x(T)
  int64_t nfe = 0;     // drift evaluations (each one forward + one vector-Jacobian product)
};

// x [B,...] (model input space); hutchinson [B,...] Rademacher or Gaussian noise.
// Adaptive RK45 (rtol/atol of `opt`) from eps to T over the whole batch as one state.
LogpResult logp_ode(const models::ScoreFn& score, const sde::SDE& sde, const torch::Tensor& x,
                    const torch::Tensor& hutchinson, const sampling::OdeOptions& opt, double eps = kLikelihoodEps);

// Rademacher noise (+1/-1 with equal probability), shape `shape`.
torch::Tensor rademacher(at::IntArrayRef shape, at::Generator& gen);

// bits/dim from log p (nats) of D-dimensional items, plus `offset` (8 for [0,1] images,
// 7 for [-1,1] images, 0 for point data).
torch::Tensor bits_per_dim(const torch::Tensor& logp, int64_t D, double offset);
// That offset for a job's data: 8 for [0,1] images, 7 for centred [-1,1] ones, 0 for points.
double bits_per_dim_offset(const Config& cfg);

}  // namespace scorch::likelihood
