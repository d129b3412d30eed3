// Sampling the reverse-time SDE from the prior. The Euler-Maruyama predictor (no
// corrector) is here; the full predictor/corrector family and the ODE sampler come with
// the SDE toolbox and share this interface.
#pragma once
#include <torch/torch.h>

#include <functional>

#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"

namespace scorch::sampling {

struct SampleResult {
  torch::Tensor x;  // [B,...] final sample (x_mean of the last step if noise_removal)
  int64_t nfe = 0;  // score evaluations per item
};

// Progress callback: (steps done, steps total).
using Progress = std::function<void(int64_t, int64_t)>;

// Euler-Maruyama on the reverse SDE: timesteps linspace(T, eps, N), dt = -1/N,
// x_mean = x + f_rev dt, x = x_mean + g sqrt(-dt) z. `shape` is [B,...].
SampleResult euler_maruyama(const models::ScoreFn& score, const sde::SDE& sde, at::IntArrayRef shape,
                            int64_t num_steps, double eps, bool noise_removal, at::Generator& gen,
                            const Progress& progress = {});

}  // namespace scorch::sampling
