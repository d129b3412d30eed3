// The score s(x, t) ~ grad log p_t(x) as samplers, losses and the likelihood consume it:
// a network plus an SDE (label and output conventions of REFERENCE.md), or any analytic
// function in tests.
#pragma once
#include <functional>

#include "scorch/models/model.h"
#include "scorch/sde/sde.h"

namespace scorch::models {

// (x [B,...], t [B]) -> score [B,...].
using ScoreFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

// The network's score under `sde` (continuous time). Captures both by reference.
inline ScoreFn make_score_fn(ScoreNet& net, const sde::SDE& s) {
  return [&net, &s](const torch::Tensor& x, const torch::Tensor& t) {
    return s.score_from_output(net.forward(x, s.time_label(t)), t);
  };
}

}  // namespace scorch::models
