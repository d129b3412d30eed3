// Probability-flow ODE likelihood with fixed-step RK4 on the joint state (x, log p).
#include "scorch/likelihood/likelihood.h"

#include <cmath>

namespace scorch::likelihood {

namespace {

// Drift of the probability-flow ODE and its Hutchinson divergence estimate, [B,...] and [B].
std::pair<torch::Tensor, torch::Tensor> drift_and_div(const models::ScoreFn& score, const sde::SDE& s,
                                                      const torch::Tensor& x_in, double t_scalar,
                                                      const torch::Tensor& e) {
  torch::AutoGradMode grad(true);
  auto x = x_in.detach().requires_grad_(true);
  auto t = torch::full({x.size(0)}, t_scalar, x.options().requires_grad(false));
  auto f = s.reverse_drift(x, t, score(x, t), /*probability_flow=*/true);
  auto vjp = torch::autograd::grad({(f * e).sum()}, {x})[0];
  return {f.detach(), (vjp * e).flatten(1).sum(1).detach()};
}

}  // namespace

LogpResult logp_rk4(const models::ScoreFn& score, const sde::SDE& s, const torch::Tensor& x0,
                    const torch::Tensor& e, int64_t steps, double eps) {
  const double h = (s.T() - eps) / static_cast<double>(steps);
  auto x = x0.detach().clone();
  auto delta = torch::zeros({x.size(0)}, x.options());
  double t = eps;
  for (int64_t i = 0; i < steps; ++i) {
    auto [k1, d1] = drift_and_div(score, s, x, t, e);
    auto [k2, d2] = drift_and_div(score, s, x + 0.5 * h * k1, t + 0.5 * h, e);
    auto [k3, d3] = drift_and_div(score, s, x + 0.5 * h * k2, t + 0.5 * h, e);
    auto [k4, d4] = drift_and_div(score, s, x + h * k3, t + h, e);
    x = x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4);
    delta = delta + (h / 6.0) * (d1 + 2 * d2 + 2 * d3 + d4);
    t = eps + static_cast<double>(i + 1) * h;
  }
  return {s.prior_logp(x) + delta, x, 4 * steps};
}

torch::Tensor rademacher(at::IntArrayRef shape, at::Generator& gen) {
  return torch::randint(0, 2, shape, gen, torch::kFloat32) * 2.0 - 1.0;
}

torch::Tensor bits_per_dim(const torch::Tensor& logp, int64_t D, double offset) {
  return -logp / (static_cast<double>(D) * std::log(2.0)) + offset;
}

}  // namespace scorch::likelihood
