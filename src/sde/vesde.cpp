// VE SDE: sigma(t) = sigma_min (sigma_max/sigma_min)^t, no drift, diffusion
// sigma(t) sqrt(2 log(sigma_max/sigma_min)); p_0t = N(x_0, sigma(t)^2 I), prior N(0, sigma_max^2 I).
#include <cmath>

#include "scorch/sde/variants.h"

namespace scorch::sde {

torch::Tensor VESDE::sigma(const torch::Tensor& t) const {
  return sigma_min_ * torch::pow(sigma_max_ / sigma_min_, t);
}

std::pair<torch::Tensor, torch::Tensor> VESDE::sde(const torch::Tensor& x, const torch::Tensor& t) const {
  return {torch::zeros_like(x), sigma(t) * std::sqrt(2.0 * std::log(sigma_max_ / sigma_min_))};
}


torch::Tensor VESDE::prior_sampling(at::IntArrayRef shape, at::Generator& gen) const {
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32).device(gen.device())) * sigma_max_;
}

torch::Tensor VESDE::prior_from_normal(const torch::Tensor& z) const { return z * sigma_max_; }

torch::Tensor VESDE::prior_logp(const torch::Tensor& z) const { return gaussian_logp(z, sigma_max_); }

std::pair<torch::Tensor, torch::Tensor> VESDE::sigma_pair(const torch::Tensor& t) const {
  auto i = step_index(t);
  auto sigma = sigmas_.index_select(0, i);
  auto prev = torch::where(i == 0, torch::zeros_like(sigma), sigmas_.index_select(0, (i - 1).clamp_min(0)));
  return {sigma.to(torch::kFloat32), prev.to(torch::kFloat32)};
}

std::pair<torch::Tensor, torch::Tensor> VESDE::discretize(const torch::Tensor& x, const torch::Tensor& t) const {
  auto [sigma, prev] = sigma_pair(t);
  return {torch::zeros_like(x), (sigma * sigma - prev * prev).sqrt()};
}

}  // namespace scorch::sde
