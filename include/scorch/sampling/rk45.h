// Adaptive Dormand-Prince RK45 on a state made of several tensors, treated as one vector
// (as scipy's solve_ivp does for the reference): local error measured as the RMS over all
// elements of err / (atol + rtol * max(|y|, |y_new|)), FSAL, standard step-size control.
// Integrates forward or backward in time. Used by the likelihood and the ODE sampler.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace scorch::sampling {

using OdeState = std::vector<torch::Tensor>;
// dy/dt at (t, y); returns tensors shaped like y.
using OdeRhs = std::function<OdeState(double t, const OdeState& y)>;

struct OdeOptions {
  double rtol = 1e-5;
  double atol = 1e-5;
  int64_t max_steps = 100000;
};

struct OdeStats {
  int64_t nfe = 0;       // right-hand-side evaluations
  int64_t accepted = 0;  // accepted steps
  int64_t rejected = 0;  // rejected steps
};

// y(t1) from y(t0) = y0. Throws if max_steps is exceeded or the step size underflows.
OdeState rk45(const OdeRhs& f, OdeState y0, double t0, double t1, const OdeOptions& opt, OdeStats* stats = nullptr);

}  // namespace scorch::sampling
