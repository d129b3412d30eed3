// Classifier-free and classifier guidance (see sampling/guidance.h).
#include "scorch/sampling/guidance.h"

#include "scorch/core/error.h"

namespace scorch::sampling {

models::ScoreFn guided_score(const Guidance& g, const torch::Tensor& labels_in) {
  if (!labels_in.defined()) return g.unconditional;
  const torch::Tensor labels = labels_in.to(torch::kInt64);
  models::ScoreFn base;
  if (g.conditional) {
    const double w = g.guidance_scale;
    base = [&g, labels, w](const torch::Tensor& x, const torch::Tensor& t) {
      auto c = labels.to(x.device());
      if (w == 0) return g.conditional(x, t, c);
      const int64_t B = x.size(0);
      auto null = torch::full_like(c, g.num_classes);
      auto both = g.conditional(torch::cat({x, x}), torch::cat({t, t}), torch::cat({c, null}));
      return (1.0 + w) * both.slice(0, 0, B) - w * both.slice(0, B, 2 * B);
    };
  } else {
    SCORCH_CHECK(g.classifier, "class labels need a class-conditional network or a guiding classifier");
    base = g.unconditional;
  }
  if (!g.classifier) return base;
  const double lam = g.classifier_scale;
  return [&g, base, labels, lam](const torch::Tensor& x, const torch::Tensor& t) {
    auto s = base(x, t);
    torch::Tensor grad;
    {
      torch::AutoGradMode enable(true);
      auto xg = x.detach().requires_grad_(true);
      auto logp = g.classifier(xg, t);  // [B,K]
      auto picked = logp.gather(1, labels.to(x.device()).unsqueeze(1)).sum();
      grad = torch::autograd::grad({picked}, {xg})[0];
    }
    return s + lam * grad.to(s.scalar_type());
  };
}

torch::Tensor class_labels_for(const Config& cfg, const std::vector<int64_t>& index, int64_t num_classes) {
  const auto& c = cfg.sampling.class_label;
  if (c == "none") return torch::Tensor();
  auto idx = torch::tensor(index, torch::kInt64);
  if (c == "balanced") {
    SCORCH_CHECK(num_classes > 0, "sampling.class_label = balanced needs the number of classes");
    return idx.remainder(num_classes);
  }
  const int64_t label = std::stoll(c);
  SCORCH_CHECK(num_classes == 0 || label < num_classes, "sampling.class_label = {} but there are {} classes", label,
               num_classes);
  return torch::full_like(idx, label);
}

}  // namespace scorch::sampling
