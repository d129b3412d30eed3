// Class-guided scores (sampling.class_label, sampling.guidance_scale, sampling.classifier):
//  - classifier-free guidance (Ho & Salimans 2022): (1 + w) s(x, t, c) - w s(x, t, null),
//    from one network that learned both (training.label_dropout); the two evaluations run as
//    one batch [x; x] with labels [c; null];
//  - classifier guidance (Song et al. 2021, section 5, eq. 14; Dhariwal & Nichol 2021):
//    s(x, t) + lambda grad_x log p(c | x, t), the gradient taken with autograd enabled
//    locally (samplers run under NoGradGuard).
// Both combine: the classifier term is added to the (possibly free-guided) score.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "scorch/core/config.h"
#include "scorch/models/score_fn.h"

namespace scorch::sampling {

// log p(c | x_t, t) for every class: (x [B,...], t [B]) -> [B,K].
using ClassifierFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

struct Guidance {
  models::ScoreFn unconditional;          // s(x, t) (a conditional network's null label)
  models::ClassScoreFn conditional;       // s(x, t, c), c in [0, K] (K: null); empty if unconditional
  int64_t num_classes = 0;                // K
  ClassifierFn classifier;                // empty: no classifier guidance
  double guidance_scale = 0;              // w
  double classifier_scale = 1;            // lambda
};

// The score for samples of classes `labels` (int64 [B]; undefined: unconditional). Captures
// `g` by reference and `labels` by value.
models::ScoreFn guided_score(const Guidance& g, const torch::Tensor& labels);

// The class of each sample by its global index, from sampling.class_label: a fixed label,
// `balanced` (index mod K), or undefined for "none". int64 [B] on the CPU.
torch::Tensor class_labels_for(const Config& cfg, const std::vector<int64_t>& index, int64_t num_classes);

}  // namespace scorch::sampling
