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
// `class_labels` int64 [B] (or undefined: the null label of a class-conditional network) are
// the labels of the batch the function is called on, captured by value. Captures `net` and
// `s` by reference.
ScoreFn make_score_fn(ScoreNet& net, const sde::SDE& s, bool continuous = true,
                      const torch::Tensor& class_labels = torch::Tensor());

// (x [B,...], t [B], class labels int64 [B] in [0, K], K the null label) -> score [B,...].
using ClassScoreFn =
    std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels)>;
// A class-conditional network's score for any labels. Captures `net` and `s` by reference.
ClassScoreFn make_class_score_fn(ScoreNet& net, const sde::SDE& s, bool continuous = true);

}  // namespace scorch::models
