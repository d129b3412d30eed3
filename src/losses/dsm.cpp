// DSM: x_t = mean + std z; sigma^2 weighting gives || s std + z ||^2, likelihood weighting
// gives || s + z / std ||^2 g^2; then mean or 0.5*sum over data dims.
#include "scorch/losses/dsm.h"

namespace scorch::losses {

torch::Tensor dsm_loss_per_item(const models::ScoreFn& score, const sde::SDE& s, const torch::Tensor& x0,
                                const torch::Tensor& t, const torch::Tensor& z, const DsmOptions& opt) {
  auto [mean, std] = s.marginal_prob(x0, t);
  auto stdb = sde::per_item(std, x0);
  auto xt = mean + stdb * z;
  auto sc = score(xt, t);
  torch::Tensor sq;
  if (opt.likelihood_weighting) {
    auto g = s.sde(torch::zeros_like(x0), t).second;
    sq = (sc + z / stdb).pow(2) * sde::per_item(g * g, x0);
  } else {
    sq = (sc * stdb + z).pow(2);
  }
  auto flat = sq.flatten(1);
  return opt.reduce_mean ? flat.mean(1) : 0.5 * flat.sum(1);
}

torch::Tensor dsm_loss(const models::ScoreFn& score, const sde::SDE& s, const torch::Tensor& x0,
                       const torch::Tensor& t, const torch::Tensor& z, const DsmOptions& opt) {
  return dsm_loss_per_item(score, s, x0, t, z, opt).mean();
}

}  // namespace scorch::losses
