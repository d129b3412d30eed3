// sub-VP SDE: the VP drift with diffusion sqrt(beta(t) (1 - exp(-2 b0 t - (b1-b0) t^2))).
// Its std is 1 - exp(2 m(t)) (the variance is its square), always below the VP std.
#include "scorch/sde/variants.h"

namespace scorch::sde {

std::pair<torch::Tensor, torch::Tensor> SubVPSDE::sde(const torch::Tensor& x, const torch::Tensor& t) const {
  auto beta = beta_min_ + t * (beta_max_ - beta_min_);
  auto discount = -torch::expm1(-2.0 * beta_min_ * t - (beta_max_ - beta_min_) * t * t);
  return {-0.5 * per_item(beta, x) * x, (beta * discount).sqrt()};
}

torch::Tensor SubVPSDE::sigma(const torch::Tensor& t) const { return -torch::expm1(2.0 * log_mean_coeff(t)); }

}  // namespace scorch::sde
