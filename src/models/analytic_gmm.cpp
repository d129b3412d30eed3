// Exact Gaussian-mixture scores and densities, computed in float64 and returned in the
// dtype of x.
#include "scorch/models/analytic_gmm.h"

#include <cmath>

#include "scorch/core/error.h"

namespace scorch::models {

AnalyticGMM::AnalyticGMM(const ModelConfig& cfg) {
  const auto K = static_cast<int64_t>(cfg.gmm_means.size());
  SCORCH_CHECK(K > 0, "analytic_gmm needs model.gmm_means");
  const auto D = static_cast<int64_t>(cfg.gmm_means[0].size());
  means_ = torch::empty({K, D}, torch::kFloat64);
  for (int64_t k = 0; k < K; ++k) {
    SCORCH_CHECK(static_cast<int64_t>(cfg.gmm_means[k].size()) == D, "model.gmm_means rows must have equal length");
    for (int64_t d = 0; d < D; ++d) means_[k][d] = cfg.gmm_means[k][d];
  }
  stds_ = torch::tensor(cfg.gmm_stds, torch::kFloat64);
  auto w = torch::tensor(cfg.gmm_weights, torch::kFloat64);
  SCORCH_CHECK(stds_.size(0) == K && w.size(0) == K, "model.gmm_stds and model.gmm_weights need {} entries", K);
  log_w_ = (w / w.sum()).log();
}

std::pair<torch::Tensor, torch::Tensor> AnalyticGMM::components(const sde::SDE& s, const torch::Tensor& x_in,
                                                                const torch::Tensor& t) const {
  auto x = x_in.to(torch::kFloat64);
  const double D = static_cast<double>(x.size(1));
  const auto t64 = t.to(torch::kFloat64);
  auto a = s.alpha(t64).unsqueeze(1), std = s.sigma(t64);  // [B,1], [B]
  auto v = a * a * stds_.pow(2).unsqueeze(0) + (std * std).unsqueeze(1);   // [B,K]
  auto diff = x.unsqueeze(1) - a.unsqueeze(2) * means_.unsqueeze(0);       // [B,K,D]
  auto logn = -0.5 * D * (2 * M_PI * v).log() - diff.pow(2).sum(2) / (2 * v);  // [B,K]
  return {log_w_.unsqueeze(0) + logn, diff / v.unsqueeze(2)};
}

torch::Tensor AnalyticGMM::score(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t) const {
  auto [logits, grad] = components(s, x, t);
  auto resp = torch::softmax(logits, 1);  // [B,K]
  return (-(resp.unsqueeze(2) * grad).sum(1)).to(x.scalar_type());
}

torch::Tensor AnalyticGMM::class_score(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t,
                                       const torch::Tensor& labels) const {
  auto [logits, grad] = components(s, x, t);
  const int64_t K = means_.size(0);
  // Responsibilities within the class: one-hot for labels < K, the mixture's for the null label.
  auto lab = labels.to(torch::kInt64).to(logits.device());
  auto onehot = torch::one_hot(lab.clamp_max(K - 1), K).to(torch::kFloat64);
  auto is_null = (lab >= K).unsqueeze(1);
  auto resp = torch::where(is_null, torch::softmax(logits, 1), onehot);
  return (-(resp.unsqueeze(2) * grad).sum(1)).to(x.scalar_type());
}

torch::Tensor AnalyticGMM::log_posterior(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t) const {
  return torch::log_softmax(components(s, x, t).first, 1);
}

torch::Tensor AnalyticGMM::logp(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t) const {
  return torch::logsumexp(components(s, x, t).first, 1);
}

void AnalyticGMM::to(const torch::Device& device) {
  means_ = means_.to(device);
  stds_ = stds_.to(device);
  log_w_ = log_w_.to(device);
}

std::pair<torch::Tensor, torch::Tensor> AnalyticGMM::sample(int64_t n, at::Generator& gen) const {
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64).device(gen.device());
  auto means = means_.to(gen.device()), stds = stds_.to(gen.device());
  auto k = torch::multinomial(log_w_.exp().to(gen.device()), n, /*replacement=*/true, gen);
  auto z = torch::randn({n, means.size(1)}, gen, opt);
  return {(means.index_select(0, k) + stds.index_select(0, k).unsqueeze(1) * z).to(torch::kFloat32), k};
}

}  // namespace scorch::models
