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

torch::Tensor Adam::grad_norm() const {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> gs;
  for (const auto& [name, p] : params_)
    if (p.grad().defined()) gs.push_back(p.grad());
  if (gs.empty()) return torch::zeros({}, params_.front().second.options());
  return torch::stack(at::_foreach_norm(gs, 2)).norm(2);
}

torch::Tensor Adam::step(int64_t step, torch::Tensor norm) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> ps, gs, ms, vs;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i].second;
    if (!p.grad().defined()) continue;
    ps.push_back(p);
    gs.push_back(p.grad());
    ms.push_back(m_[i]);
    vs.push_back(v_[i]);
  }
  ++t_;
  if (ps.empty()) return torch::zeros({}, params_.front().second.options());
  // torch.nn.utils.clip_grad_norm_: the 2-norm of the per-tensor norms, and the gradients
  // scaled by min(1, max_norm / (norm + 1e-6)), kept on the device.
  if (!norm.defined()) norm = torch::stack(at::_foreach_norm(gs, 2)).norm(2);
  if (cfg_.grad_clip >= 0) {
    auto coef = (cfg_.grad_clip / (norm + 1e-6)).clamp_max(1.0);
    for (auto& g : gs) g.mul_(coef);
  }
  const double lr = lr_at(step), b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  auto grads = gs;
  if (cfg_.weight_decay != 0) grads = at::_foreach_add(gs, ps, cfg_.weight_decay);
  at::_foreach_mul_(ms, b1);
  at::_foreach_add_(ms, grads, 1.0 - b1);
  at::_foreach_mul_(vs, b2);
  at::_foreach_addcmul_(vs, grads, grads, 1.0 - b2);
  auto denom = at::_foreach_sqrt(vs);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, cfg_.eps);
  at::_foreach_addcdiv_(ps, ms, denom, -lr / bc1);
  return norm;
}

void ema_step(std::vector<torch::Tensor>& shadow, const std::vector<std::pair<std::string, torch::Tensor>>& params,
              double decay) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> ps;
  ps.reserve(params.size());
  for (const auto& [name, p] : params) ps.push_back(p);
  auto diff = at::_foreach_sub(shadow, ps);
  at::_foreach_mul_(diff, 1.0 - decay);
  at::_foreach_sub_(shadow, diff);
}

EMA::EMA(const std::vector<std::pair<std::string, torch::Tensor>>& params, double decay) : decay_(decay) {
  for (const auto& [name, p] : params) shadow_.push_back(p.detach().clone());
}

void EMA::update(const std::vector<std::pair<std::string, torch::Tensor>>& params) {
  torch::NoGradGuard ng;
  ++n_;
  ema_step(shadow_, params, std::min(decay_, (1.0 + static_cast<double>(n_)) / (10.0 + static_cast<double>(n_))));
}

void EMA::copy_to(const std::vector<std::pair<std::string, torch::Tensor>>& params) const {
  torch::NoGradGuard ng;
  SCORCH_CHECK(params.size() == shadow_.size(), "EMA holds {} tensors, model has {}", shadow_.size(), params.size());
  for (size_t i = 0; i < shadow_.size(); ++i) params[i].second.copy_(shadow_[i]);
}

}  // namespace scorch::optim
