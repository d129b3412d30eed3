// The three time schedules (see sampling/schedule.h), computed in float64 on the host.
#include "scorch/sampling/schedule.h"

#include <torch/torch.h>

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/sde/variants.h"

namespace scorch::sampling {

namespace {
TimeSchedule from_points(const std::vector<double>& pts) {
  TimeSchedule s;
  for (size_t i = 0; i + 1 < pts.size(); ++i) {
    s.t.push_back(pts[i]);
    s.t_next.push_back(pts[i + 1]);
  }
  return s;
}
}  // namespace

TimeSchedule pc_schedule(const sde::SDE& sde, double eps) {
  const int64_t N = sde.N();
  auto grid = torch::linspace(sde.T(), eps, N, torch::kFloat64);  // score_sde's timesteps, bitwise
  const auto* g = grid.data_ptr<double>();
  TimeSchedule s;
  for (int64_t i = 0; i < N; ++i) {
    s.t.push_back(g[i]);
    s.t_next.push_back(g[i] - 1.0 / static_cast<double>(N));
  }
  return s;
}

TimeSchedule logsnr_schedule(const sde::SDE& sde, double eps, int64_t steps) {
  SCORCH_CHECK(steps >= 1, "sampling.steps must be at least 1 (got {})", steps);
  const double l0 = sde.lambda_at(sde.T()), l1 = sde.lambda_at(eps);
  std::vector<double> pts{sde.T()};
  for (int64_t i = 1; i < steps; ++i) {
    pts.push_back(sde.time_of_lambda(l0 + (l1 - l0) * static_cast<double>(i) / static_cast<double>(steps)));
  }
  pts.push_back(eps);
  return from_points(pts);
}

TimeSchedule edm_schedule(const sde::SDE& sde, double eps, int64_t steps, double rho) {
  const auto* ve = dynamic_cast<const sde::VESDE*>(&sde);
  SCORCH_CHECK(ve != nullptr, "the EDM sigma schedule (sampling.method = \"heun\") exists for vesde, not {}",
               sde.name());
  SCORCH_CHECK(steps >= 1, "sampling.steps must be at least 1 (got {})", steps);
  const double a = std::pow(sde.sigma_at(sde.T()), 1.0 / rho), b = std::pow(sde.sigma_at(eps), 1.0 / rho);
  std::vector<double> pts{sde.T()};
  for (int64_t i = 1; i < steps; ++i) {
    const double sigma = std::pow(a + static_cast<double>(i) / static_cast<double>(steps) * (b - a), rho);
    pts.push_back(ve->time_of_sigma(sigma));
  }
  pts.push_back(eps);
  return from_points(pts);
}

}  // namespace scorch::sampling
