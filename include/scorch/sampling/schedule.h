// Time schedules of the samplers: the times at which the score is evaluated, from T down
// to eps, and where each step lands. Predictors take one step from t to t_next, so a
// sampler is a loop over a schedule:
//  - pc: score_sde's grid linspace(T, eps, N) with the step dt = -1/N of its predictors
//    (sampling.py; so t_next = t - 1/N, not the next grid point: the reference's convention);
//  - logsnr: `steps` steps uniform in the log-SNR lambda(t) from lambda(T) to lambda(eps),
//    DPM-Solver's recommended spacing (Lu et al. 2022, section 3.3), also used for DDIM;
//  - edm: EDM's sigma schedule with rho = 7 between sigma(T) and sigma(eps), mapped back
//    to VE times (Karras et al. 2022, eq. 5).
#pragma once
#include <cstdint>
#include <vector>

#include "scorch/sde/sde.h"

namespace scorch::sampling {

struct TimeSchedule {
  std::vector<double> t;       // evaluation times, decreasing, t[0] = T
  std::vector<double> t_next;  // where step i lands (t_next[i] < t[i])
  int64_t size() const { return static_cast<int64_t>(t.size()); }
};

TimeSchedule pc_schedule(const sde::SDE& sde, double eps);
TimeSchedule logsnr_schedule(const sde::SDE& sde, double eps, int64_t steps);
// VE only: sigma_i = (s_max^(1/rho) + i/steps (s_min^(1/rho) - s_max^(1/rho)))^rho.
TimeSchedule edm_schedule(const sde::SDE& sde, double eps, int64_t steps, double rho = 7.0);

}  // namespace scorch::sampling
