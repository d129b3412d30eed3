// Power-function EMA and post-hoc reconstruction (see optim/power_ema.h).
#include "scorch/optim/power_ema.h"

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/optim/adam.h"

namespace scorch::optim {

namespace {
// sigma_rel's largest value, at gamma = (sqrt(5) - 3) / 2: beyond it no profile is that wide.
const double kGammaPeak = (std::sqrt(5.0) - 3.0) / 2.0;
}  // namespace

double sigma_rel_of_gamma(double gamma) {
  SCORCH_CHECK(gamma > -1, "power-function EMA: gamma = {} must exceed -1", gamma);
  return std::sqrt((gamma + 1) / ((gamma + 2) * (gamma + 2) * (gamma + 3)));
}

double gamma_of_sigma_rel(double sigma_rel) {
  const double max = sigma_rel_of_gamma(kGammaPeak);
  SCORCH_CHECK(std::isfinite(sigma_rel) && sigma_rel > 0 && sigma_rel < max,
               "ema.sigma_rels: {} is not a profile width: sigma_rel must lie in (0, {:.4f}) (EDM2 uses 0.05 and 0.10)",
               sigma_rel, max);
  // Newton on the cubic from the right of its largest root: the cubic is increasing and
  // convex there, so the iterates fall monotonically onto that root.
  const double s = 1.0 / (sigma_rel * sigma_rel);
  auto h = [s](double g) { return ((g + 7) * g + (16 - s)) * g + (12 - s); };
  auto dh = [s](double g) { return (3 * g + 14) * g + (16 - s); };
  double g = s + 10;
  for (int i = 0; i < 200; ++i) {
    const double step = h(g) / dh(g);
    g -= step;
    if (std::abs(step) <= 1e-14 * std::max(1.0, std::abs(g))) break;
  }
  SCORCH_CHECK(std::isfinite(g) && g > kGammaPeak - 1e-9,
               "sigma_rel {}: no power-function profile has this width in double precision (its exponent gamma does "
               "not converge); EDM2 uses 0.05 to 0.10", sigma_rel);
  return g;
}

PowerEMA::PowerEMA(const std::vector<std::pair<std::string, torch::Tensor>>& params, double sigma_rel)
    : sigma_rel_(sigma_rel), gamma_(gamma_of_sigma_rel(sigma_rel)) {
  for (const auto& [name, p] : params) shadow_.push_back(p.detach().clone());
}

void PowerEMA::update(const std::vector<std::pair<std::string, torch::Tensor>>& params) {
  ++t_;
  ema_step(shadow_, params, std::pow(1.0 - 1.0 / static_cast<double>(t_), gamma_ + 1.0));  // beta_t
}

double profile_inner_product(const Profile& a, const Profile& b) {
  SCORCH_CHECK(a.t > 0 && b.t > 0 && a.gamma > -1 && b.gamma > -1, "profile inner product of (gamma {}, t {}) and "
               "(gamma {}, t {})", a.gamma, a.t, b.gamma, b.t);
  const double m = std::min(a.t, b.t), g = a.gamma + b.gamma + 1;
  // In logarithms: t^(gamma+1) overflows a double for long runs and steep profiles.
  const double log_value = std::log(a.gamma + 1) + std::log(b.gamma + 1) + g * std::log(m) - std::log(g) -
                           (a.gamma + 1) * std::log(a.t) - (b.gamma + 1) * std::log(b.t);
  return std::exp(log_value);
}

torch::Tensor posthoc_weights(const std::vector<Profile>& stored, const Profile& target) {
  SCORCH_CHECK(!stored.empty(), "post-hoc EMA: no stored snapshot to combine");
  const auto K = static_cast<int64_t>(stored.size());
  auto scaled = [&](Profile p) {
    p.t /= target.t;
    return p;
  };
  auto G = torch::empty({K, K}, torch::kFloat64), b = torch::empty({K, 1}, torch::kFloat64);
  auto Ga = G.accessor<double, 2>();
  auto ba = b.accessor<double, 2>();
  for (int64_t i = 0; i < K; ++i) {
    ba[i][0] = profile_inner_product(scaled(stored[static_cast<size_t>(i)]), scaled(target));
    for (int64_t j = 0; j < K; ++j) {
      Ga[i][j] = profile_inner_product(scaled(stored[static_cast<size_t>(i)]), scaled(stored[static_cast<size_t>(j)]));
    }
  }
  // Least squares (the Gram matrix of nearly equal profiles is close to singular): the
  // minimum-norm solution through the SVD ("gelsd").
  auto x = std::get<0>(at::linalg_lstsq(G, b, /*rcond=*/{}, std::string("gelsd")));
  return x.flatten();
}

}  // namespace scorch::optim
