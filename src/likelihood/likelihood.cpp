// Probability-flow ODE likelihood: adaptive RK45 on the joint state (x, delta log p).
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

LogpResult logp_ode(const models::ScoreFn& score, const sde::SDE& s, const torch::Tensor& x0,
                    const torch::Tensor& e, const sampling::OdeOptions& opt, double eps) {
  // State: (x [B,...], delta log p [B] in float64); integrated from eps up to T.
  sampling::OdeRhs rhs = [&](double t, const sampling::OdeState& y) {
    auto [f, div] = drift_and_div(score, s, y[0], t, e);
    return sampling::OdeState{f, div.to(torch::kFloat64)};
  };
  sampling::OdeStats stats;
  auto y = sampling::rk45(rhs, {x0.detach().clone(), torch::zeros({x0.size(0)}, x0.options().dtype(torch::kFloat64))}, eps, s.T(), opt,
                          &stats);
  return {s.prior_logp(y[0]).to(torch::kFloat64) + y[1], y[0], stats.nfe};
}

torch::Tensor rademacher(at::IntArrayRef shape, at::Generator& gen) {
  return torch::randint(0, 2, shape, gen, torch::TensorOptions().dtype(torch::kFloat32).device(gen.device())) * 2.0 - 1.0;
}

double bits_per_dim_offset(const Config& cfg) {
  return cfg.is_image_data() ? (cfg.data.centered ? 7.0 : 8.0) : 0.0;
}

torch::Tensor bits_per_dim(const torch::Tensor& logp, int64_t D, double offset) {
  return -logp / (static_cast<double>(D) * std::log(2.0)) + offset;
}

}  // namespace scorch::likelihood
