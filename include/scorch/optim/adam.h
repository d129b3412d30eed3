// Adam as in PyTorch (bias-corrected, coupled L2 weight decay) with score_sde's linear lr
// warm-up (losses.py, optimization_manager) and global gradient-norm clipping. Written out
// rather than wrapping torch::optim::Adam so that its state is plain named tensors:
// checkpointed by parameter name, bitwise restorable, and ready to be sharded later. The
// update uses the multi-tensor (_foreach) kernels of PyTorch's foreach Adam, elementwise the
// same arithmetic as its single-tensor loop, and never reads a value back to the host.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "scorch/core/config.h"

namespace scorch::optim {

class Adam {
 public:
  // `params`: (name, parameter) of the trainable parameters, in a fixed order.
  Adam(std::vector<std::pair<std::string, torch::Tensor>> params, const OptimConfig& cfg);

  // Learning rate at optimiser step `step` (0-based): lr * min(step / warmup, 1).
  double lr_at(int64_t step) const;
  // Clips the gradients (if grad_clip >= 0) and applies one Adam update with lr_at(step).
  // Parameters whose grad is undefined are skipped, as PyTorch skips grad None. Returns the
  // global gradient norm before clipping: a scalar tensor on the parameters' device.
  // `norm`: the value grad_norm() returned for these gradients (computed if undefined).
  torch::Tensor step(int64_t step, torch::Tensor norm = {});
  // The global 2-norm of the current gradients (a scalar on the device; NaN/Inf if any is).
  torch::Tensor grad_norm() const;

  int64_t num_steps() const { return t_; }
  void set_num_steps(int64_t t) { t_ = t; }
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }
  std::vector<torch::Tensor>& exp_avg() { return m_; }
  std::vector<torch::Tensor>& exp_avg_sq() { return v_; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> m_, v_;  // first and second moments, like params
  OptimConfig cfg_;
  int64_t t_ = 0;  // updates applied (Adam's bias-correction step)
};

// Exponential moving average of the weights, as score_sde's models/ema.py
// (ExponentialMovingAverage.update): with n the update count after incrementing,
// decay_eff = min(decay, (1+n)/(10+n)); shadow -= (1-decay_eff)(shadow - p).
// One averaging step over named tensors: shadow -= (shadow - p) (1 - decay), in three
// multi-tensor kernels; shared by EMA and PowerEMA (optim/power_ema.h).
void ema_step(std::vector<torch::Tensor>& shadow, const std::vector<std::pair<std::string, torch::Tensor>>& params,
              double decay);

class EMA {
 public:
  EMA(const std::vector<std::pair<std::string, torch::Tensor>>& params, double decay);
  void update(const std::vector<std::pair<std::string, torch::Tensor>>& params);
  // Copies the shadow weights into `params` (e.g. to sample with them).
  void copy_to(const std::vector<std::pair<std::string, torch::Tensor>>& params) const;
  std::vector<torch::Tensor>& shadow() { return shadow_; }
  int64_t num_updates() const { return n_; }
  void set_num_updates(int64_t n) { n_ = n; }
  double decay() const { return decay_; }

 private:
  std::vector<torch::Tensor> shadow_;
  double decay_;
  int64_t n_ = 0;
};

}  // namespace scorch::optim
