// The score s(x, t) ~ grad log p_t(x) as samplers, losses and the likelihood consume it:
// a network plus an SDE (label and output conventions of score_sde's models/utils.py,
// get_score_fn), or any analytic function in tests.
#pragma once
#include <functional>

#include "scorch/models/model.h"
#include "scorch/sde/sde.h"

namespace scorch::models {

// (x [B,...], t [B]) -> score [B,...].
using ScoreFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

// The network's score under `sde`. Continuous time: label 999 t (VP, sub-VP) or sigma(t)
// (VE). Discrete (training.continuous = false): VE label round((T - t)(N - 1)), the output
// is the score; VP label t (N - 1), score = -output / sqrt(1 - alphas_cumprod[label]).
// Captures `net` and `s` by reference.
ScoreFn make_score_fn(ScoreNet& net, const sde::SDE& s, bool continuous = true);

}  // namespace scorch::models
