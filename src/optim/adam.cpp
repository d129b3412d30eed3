// Adam update (PyTorch's formula) and the weight EMA.
#include "scorch/optim/adam.h"

#include <cmath>

#include "scorch/core/error.h"

namespace scorch::optim {

Adam::Adam(std::vector<std::pair<std::string, torch::Tensor>> params, const OptimConfig& cfg)
    : params_(std::move(params)), cfg_(cfg) {
  for (const auto& [name, p] : params_) {
    m_.push_back(torch::zeros_like(p));
    v_.push_back(torch::zeros_like(p));
  }
}

double Adam::lr_at(int64_t step) const {
  if (cfg_.warmup <= 0) return cfg_.lr;
  return cfg_.lr * std::min(static_cast<double>(step) / static_cast<double>(cfg_.warmup), 1.0);
}

double Adam::step(int64_t step) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> ps;
  for (const auto& [name, p] : params_) ps.push_back(p);
  double norm = cfg_.grad_clip >= 0 ? torch::nn::utils::clip_grad_norm_(ps, cfg_.grad_clip)
                                    : torch::nn::utils::clip_grad_norm_(ps, std::numeric_limits<double>::infinity());
  ++t_;
  const double lr = lr_at(step), b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    if (!p.grad().defined()) continue;
    auto g = p.grad();
    if (cfg_.weight_decay != 0) g = g.add(p, cfg_.weight_decay);
    m_[i].mul_(b1).add_(g, 1.0 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    auto denom = (v_[i].sqrt() / std::sqrt(bc2)).add_(cfg_.eps);
    p.addcdiv_(m_[i], denom, -lr / bc1);
  }
  return norm;
}

EMA::EMA(const std::vector<std::pair<std::string, torch::Tensor>>& params, double decay) : decay_(decay) {
  for (const auto& [name, p] : params) shadow_.push_back(p.detach().clone());
}

void EMA::update(const std::vector<std::pair<std::string, torch::Tensor>>& params) {
  torch::NoGradGuard ng;
  ++n_;
  double d = std::min(decay_, (1.0 + static_cast<double>(n_)) / (10.0 + static_cast<double>(n_)));
  for (size_t i = 0; i < shadow_.size(); ++i) shadow_[i].sub_((shadow_[i] - params[i].second) * (1.0 - d));
}

void EMA::copy_to(const std::vector<std::pair<std::string, torch::Tensor>>& params) const {
  torch::NoGradGuard ng;
  SCORCH_CHECK(params.size() == shadow_.size(), "EMA holds {} tensors, model has {}", shadow_.size(), params.size());
  for (size_t i = 0; i < shadow_.size(); ++i) params[i].second.copy_(shadow_[i]);
}

}  // namespace scorch::optim
