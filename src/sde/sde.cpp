// The parts of the SDE interface shared by every variant, and the factory.
#include "scorch/sde/sde.h"

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/core/names.h"
#include "scorch/sde/variants.h"

namespace scorch::sde {

torch::Tensor per_item(const torch::Tensor& v, const torch::Tensor& like) {
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

torch::Tensor gaussian_logp(const torch::Tensor& z, double s) {
  double d = static_cast<double>(z[0].numel());
  auto sq = z.pow(2).flatten(1).sum(1);
  return -0.5 * d * std::log(2.0 * M_PI * s * s) - sq / (2.0 * s * s);
}

torch::Tensor SDE::reverse_drift(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& score,
                                 bool probability_flow) const {
  auto [f, g] = sde(x, t);
  auto g2 = per_item(g * g, x);
  return f - g2 * score * (probability_flow ? 0.5 : 1.0);
}

double SDE::alpha_at(double t) const {
  return alpha(torch::full({1}, t, torch::kFloat64)).item<double>();
}

double SDE::sigma_at(double t) const {
  return sigma(torch::full({1}, t, torch::kFloat64)).item<double>();
}

double SDE::time_of_lambda(double l) const {
  double lo = 1e-12, hi = T();  // lambda(lo) > lambda(hi)
  if (l >= lambda_at(lo)) return lo;
  if (l <= lambda_at(hi)) return hi;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    (lambda_at(mid) > l ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

std::pair<torch::Tensor, torch::Tensor> SDE::discretize(const torch::Tensor& x, const torch::Tensor& t) const {
  const double dt = 1.0 / static_cast<double>(N_);
  auto [f, g] = sde(x, t);
  return {f * dt, g * std::sqrt(dt)};
}

torch::Tensor SDE::step_index(const torch::Tensor& t) const {
  return (t * static_cast<double>(N_ - 1) / T()).to(torch::kInt64);
}

std::pair<torch::Tensor, torch::Tensor> SDE::reverse_discretize(const torch::Tensor& x, const torch::Tensor& t,
                                                                const torch::Tensor& score,
                                                                bool probability_flow) const {
  auto [f, G] = discretize(x, t);
  auto rev_f = f - per_item(G * G, x) * score * (probability_flow ? 0.5 : 1.0);
  return {rev_f, probability_flow ? torch::zeros_like(G) : G};
}

std::unique_ptr<SDE> make_sde(const Config& cfg) {
  const auto& m = cfg.model;
  const auto& name = cfg.training.sde;
  if (name == "vpsde") return std::make_unique<VPSDE>(m.beta_min, m.beta_max, m.num_scales);
  if (name == "subvpsde") return std::make_unique<SubVPSDE>(m.beta_min, m.beta_max, m.num_scales);
  if (name == "vesde") return std::make_unique<VESDE>(m.sigma_min, m.sigma_max, m.num_scales);
  SCORCH_THROW("SDE '{}' not found (training.sde): valid are {}", name, names::joined(names::sdes(), ", "));
}

}  // namespace scorch::sde
