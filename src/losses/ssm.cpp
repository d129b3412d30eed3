// SSM-VR on x_t: the Jacobian term through torch::autograd::grad with create_graph, so the
// trainer's backward differentiates it once more.
#include "scorch/losses/ssm.h"

namespace scorch::losses {

torch::Tensor ssm_loss_per_item(const models::ScoreFn& score, const sde::SDE& s, const torch::Tensor& x0,
                                const torch::Tensor& t, const torch::Tensor& z, const torch::Tensor& v,
                                const DsmOptions& opt) {
  torch::AutoGradMode enable(true);
  auto [mean, std] = s.marginal_prob(x0, t);
  auto xt = (mean + sde::per_item(std, x0) * z).detach().requires_grad_(true);
  auto sc = score(xt, t);
  auto sv = (sc * v).sum();
  auto jv = torch::autograd::grad({sv}, {xt}, /*grad_outputs=*/{}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  auto per_dim = (jv * v).flatten(1) + 0.5 * sc.pow(2).flatten(1);  // [B,D]
  auto j = opt.reduce_mean ? per_dim.mean(1) : per_dim.sum(1);
  auto w = opt.likelihood_weighting ? s.sde(x0, t).second.pow(2) : std * std;
  return j * w;
}

}  // namespace scorch::losses
