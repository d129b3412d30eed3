// Power-function EMA profiles and their post-hoc reconstruction (Karras et al., 2024, EDM2,
// "Analyzing and Improving the Training Dynamics of Diffusion Models", section 3 and
// appendix C).
//
// A profile of exponent gamma averages the weights of steps 1..t with density
// p(tau) = (gamma+1) tau^gamma / t^(gamma+1) on [0, t]; per step,
//   beta_t = (1 - 1/t)^(gamma+1),  theta_hat_t = beta_t theta_hat_{t-1} + (1 - beta_t) theta_t,
// which is exactly theta_hat_t = sum_i w_i theta_i with w_i = (i^(gamma+1) - (i-1)^(gamma+1)) /
// t^(gamma+1) (the profile integrated over step i). Its width relative to t is
// sigma_rel = sqrt((gamma+1) / ((gamma+2)^2 (gamma+3))).
//
// Post-hoc: snapshots of a few profiles stored at times t_i combine into any other profile
// (gamma, t): the weights x minimise || p_target - sum_i x_i p_i ||_2 on [0, t], i.e. solve
// G x = b with G_ij = <p_i, p_j>, b_i = <p_i, p_target>, the inner products in closed form.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace scorch::optim {

// sigma_rel of exponent gamma (> -1), and gamma of sigma_rel: the largest real root of
// gamma^3 + 7 gamma^2 + (16 - sigma_rel^-2) gamma + (12 - sigma_rel^-2) (0 < sigma_rel <
// sigma_rel(-1+) ~ 0.2887...; throws naming the value outside).
double sigma_rel_of_gamma(double gamma);
double gamma_of_sigma_rel(double sigma_rel);

// One profile over named tensors (a copy of the parameters at construction).
class PowerEMA {
 public:
  PowerEMA(const std::vector<std::pair<std::string, torch::Tensor>>& params, double sigma_rel);
  // One step: t += 1, then theta_hat = beta_t theta_hat + (1 - beta_t) theta (beta_1 = 0).
  void update(const std::vector<std::pair<std::string, torch::Tensor>>& params);
  std::vector<torch::Tensor>& shadow() { return shadow_; }
  const std::vector<torch::Tensor>& shadow() const { return shadow_; }
  int64_t num_updates() const { return t_; }
  void set_num_updates(int64_t t) { t_ = t; }
  double sigma_rel() const { return sigma_rel_; }
  double gamma() const { return gamma_; }

 private:
  std::vector<torch::Tensor> shadow_;
  double sigma_rel_, gamma_;
  int64_t t_ = 0;
};

// The stored profile (gamma, t) of a snapshot.
struct Profile {
  double gamma = 0;
  double t = 0;  // updates averaged (> 0)
};

// <p_a, p_b> on [0, inf): (ga+1)(gb+1) min(ta,tb)^(ga+gb+1) / ((ga+gb+1) ta^(ga+1) tb^(gb+1)).
double profile_inner_product(const Profile& a, const Profile& b);

// The least-squares weights [K] (float64) of `stored` that approximate `target`; throws if
// none is given. Computed with the times scaled by the target's (the weights are unchanged
// by a common scale) in float64.
torch::Tensor posthoc_weights(const std::vector<Profile>& stored, const Profile& target);

}  // namespace scorch::optim
