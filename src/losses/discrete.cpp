// SMLD and DDPM losses, as score_sde's get_smld_loss_fn and get_ddpm_loss_fn.
#include "scorch/losses/discrete.h"

namespace scorch::losses {

namespace {
torch::Tensor reduce(const torch::Tensor& sq, bool reduce_mean) {
  auto flat = sq.flatten(1);
  return reduce_mean ? flat.mean(1) : 0.5 * flat.sum(1);
}
}  // namespace

torch::Tensor smld_loss_per_item(const OutputFn& net, const sde::VESDE& s, const torch::Tensor& x0,
                                 const torch::Tensor& labels, const torch::Tensor& z, bool reduce_mean) {
  auto sigmas = s.discrete_sigmas().flip(0).index_select(0, labels).to(x0.scalar_type());  // descending
  auto sig = sde::per_item(sigmas, x0);
  auto noise = z * sig;
  auto score = net(x0 + noise, labels.to(torch::kFloat32));
  auto target = -noise / (sig * sig);
  return reduce((score - target).pow(2), reduce_mean) * sigmas * sigmas;
}

torch::Tensor ddpm_loss_per_item(const OutputFn& net, const sde::VPSDE& s, const torch::Tensor& x0,
                                 const torch::Tensor& labels, const torch::Tensor& z, bool reduce_mean) {
  auto [sa, s1m] = s.ddpm_coefficients();
  auto a = sde::per_item(sa.index_select(0, labels).to(x0.scalar_type()), x0);
  auto b = sde::per_item(s1m.index_select(0, labels).to(x0.scalar_type()), x0);
  auto out = net(a * x0 + b * z, labels.to(torch::kFloat32));
  return reduce((out - z).pow(2), reduce_mean);
}

}  // namespace scorch::losses
