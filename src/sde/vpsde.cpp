// VP SDE: dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw, beta linear from beta_min to beta_max.
// Mean coefficient exp(m(t)), std sqrt(1 - exp(2 m(t))), prior N(0, I).
#include "scorch/sde/variants.h"

namespace scorch::sde {

torch::Tensor VPSDE::log_mean_coeff(const torch::Tensor& t) const {
  return -0.25 * t * t * (beta_max_ - beta_min_) - 0.5 * t * beta_min_;
}

std::pair<torch::Tensor, torch::Tensor> VPSDE::sde(const torch::Tensor& x, const torch::Tensor& t) const {
  auto beta = beta_min_ + t * (beta_max_ - beta_min_);
  return {-0.5 * per_item(beta, x) * x, beta.sqrt()};
}

torch::Tensor VPSDE::sigma(const torch::Tensor& t) const {
  // -expm1(2m) = 1 - exp(2m) without cancellation at small t (m ~ -1e-6 in float32).
  return (-torch::expm1(2.0 * log_mean_coeff(t))).sqrt();
}

std::pair<torch::Tensor, torch::Tensor> VPSDE::ddpm_coefficients() const {
  auto ac = torch::cumprod(alphas(), 0);
  return {ac.sqrt(), (1.0 - ac).sqrt()};
}

torch::Tensor VPSDE::prior_sampling(at::IntArrayRef shape, at::Generator& gen) const {
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32).device(gen.device()));
}

torch::Tensor VPSDE::prior_logp(const torch::Tensor& z) const { return gaussian_logp(z, 1.0); }

torch::Tensor VPSDE::score_from_output(const torch::Tensor& out, const torch::Tensor& t) const {
  return -out / per_item(sigma(t), out);
}

std::pair<torch::Tensor, torch::Tensor> VPSDE::discretize(const torch::Tensor& x, const torch::Tensor& t) const {
  auto i = step_index(t);
  auto beta = betas_.index_select(0, i).to(torch::kFloat32);
  auto alpha = 1.0 - beta;
  return {per_item(alpha.sqrt(), x) * x - x, beta.sqrt()};
}

}  // namespace scorch::sde
