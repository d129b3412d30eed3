// Reference statistics of every supported format (see eval/reference.h).
#include "scorch/eval/reference.h"

#include <algorithm>

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/eval/metrics.h"
#include "scorch/io/npz.h"

namespace scorch::eval {

std::map<std::string, torch::Tensor> read_reference_stats(const std::string& path) {
  auto ref = io::read_npz(path);
  if (!ref.count("mu") && !ref.count("sigma") && ref.count("pool_3")) {
    const auto pool = ref.at("pool_3");
    SCORCH_CHECK(pool.dim() == 2 && pool.size(0) >= 2 && pool.is_floating_point(),
                 "{}: 'pool_3' must hold features [N,F] of N >= 2 images (score_sde's statistics), got {} of {}", path,
                 c10::str(pool.sizes()), c10::str(pool.dtype()));
    SCORCH_CHECK(torch::isfinite(pool).all().item<bool>(), "{}: 'pool_3' holds NaN or Inf", path);
    eval::Moments m;
    m.add(pool);  // accumulated in float64
    ref["mu"] = m.mean();
    ref["sigma"] = m.covariance();
    if (!ref.count("features")) ref["features"] = pool;
    spdlog::info("{}: score_sde statistics ({} images, {} features): moments computed from its pool_3 features", path,
                 pool.size(0), pool.size(1));
  }
  SCORCH_CHECK(ref.count("mu") && ref.count("sigma"),
               "{}: neither 'mu' and 'sigma' arrays (scorch, pytorch-fid and EDM statistics) nor 'pool_3' features "
               "(score_sde statistics)", path);
  auto& mu = ref.at("mu");
  auto& sigma = ref.at("sigma");
  SCORCH_CHECK(mu.dim() == 1 && mu.size(0) >= 1 && mu.is_floating_point(), "{}: 'mu' must be a float vector [F], got {} "
               "of {}", path, c10::str(mu.sizes()), c10::toString(mu.scalar_type()));
  const int64_t F = mu.size(0);
  SCORCH_CHECK(sigma.dim() == 2 && sigma.size(0) == F && sigma.size(1) == F && sigma.is_floating_point(),
               "{}: 'sigma' must be a float matrix [F,F] = [{},{}] (as 'mu'), got {} of {}", path, F, F,
               c10::str(sigma.sizes()), c10::toString(sigma.scalar_type()));
  SCORCH_CHECK(torch::isfinite(mu).all().item<bool>() && torch::isfinite(sigma).all().item<bool>(),
               "{}: 'mu' or 'sigma' holds NaN or Inf", path);
  mu = mu.to(torch::kFloat64);
  sigma = sigma.to(torch::kFloat64);
  // A covariance is symmetric (np.cov's to round-off) with a non-negative diagonal.
  const double scale = std::max(sigma.abs().max().item<double>(), 1e-300);
  const double asym = (sigma - sigma.t()).abs().max().item<double>();
  SCORCH_CHECK(asym <= 1e-6 * scale, "{}: 'sigma' is not symmetric (largest |sigma - sigma^T| = {:.3g}, {:.3g} of its "
               "largest entry): not a covariance", path, asym, asym / scale);
  const double min_diag = sigma.diagonal().min().item<double>();
  SCORCH_CHECK(min_diag >= -1e-9 * scale, "{}: 'sigma' has a negative variance on its diagonal ({:.3g}): not a "
               "covariance", path, min_diag);
  return ref;
}

}  // namespace scorch::eval
