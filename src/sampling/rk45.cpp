// Dormand-Prince 5(4) with the step-size control of scipy's RK45 (safety 0.9, factors in
// [0.2, 10], initial step from Hairer's heuristic), on a list of tensors.
#include "scorch/sampling/rk45.h"

#include <cmath>

#include "scorch/core/error.h"

namespace scorch::sampling {

namespace {

constexpr double C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
constexpr double A[6][5] = {{1.0 / 5},
                            {3.0 / 40, 9.0 / 40},
                            {44.0 / 45, -56.0 / 15, 32.0 / 9},
                            {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
                            {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
                            {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784}};
constexpr double B[6] = {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84};
// Error estimate coefficients: 5th-order minus embedded 4th-order weights (7 stages).
constexpr double E[7] = {71.0 / 57600,  0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200,
                         22.0 / 525, -1.0 / 40};

// y + h * sum_i w[i] k[i]
OdeState combine(const OdeState& y, double h, const std::vector<OdeState>& k, const double* w, size_t n) {
  OdeState out;
  for (size_t j = 0; j < y.size(); ++j) {
    auto acc = y[j].clone();
    for (size_t i = 0; i < n; ++i)
      if (w[i] != 0) acc.add_(k[i][j], h * w[i]);
    out.push_back(acc);
  }
  return out;
}

// RMS over all elements of a / scale, scale = atol + rtol * max(|y0|, |y1|).
double rms_norm(const OdeState& a, const OdeState& y0, const OdeState& y1, const OdeOptions& opt) {
  double sum = 0;
  int64_t n = 0;
  for (size_t j = 0; j < a.size(); ++j) {
    auto scale = torch::maximum(y0[j].abs(), y1[j].abs()).to(torch::kFloat64) * opt.rtol + opt.atol;
    sum += (a[j].to(torch::kFloat64) / scale).pow(2).sum().item<double>();
    n += a[j].numel();
  }
  return std::sqrt(sum / static_cast<double>(std::max<int64_t>(n, 1)));
}

}  // namespace

OdeState rk45(const OdeRhs& f, OdeState y, double t0, double t1, const OdeOptions& opt, OdeStats* stats) {
  OdeStats local;
  OdeStats& st = stats ? *stats : local;
  st = OdeStats{};
  const double dir = t1 >= t0 ? 1.0 : -1.0;
  const double span = std::abs(t1 - t0);
  if (span == 0) return y;
  auto eval = [&](double t, const OdeState& yy) {
    ++st.nfe;
    return f(t, yy);
  };
  OdeState k1 = eval(t0, y);

  // Initial step (Hairer, Norsett & Wanner, as scipy's select_initial_step).
  double h;
  {
    double d0 = rms_norm(y, y, y, opt), d1 = rms_norm(k1, y, y, opt);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = std::min(h0, span);
    std::vector<OdeState> kk{k1};
    double w1 = 1.0;
    auto y1 = combine(y, dir * h0, kk, &w1, 1);
    auto f1 = eval(t0 + dir * h0, y1);
    OdeState diff;
    for (size_t j = 0; j < y.size(); ++j) diff.push_back(f1[j] - k1[j]);
    double d2 = rms_norm(diff, y, y, opt) / h0;
    double h1 = (std::max(d1, d2) <= 1e-15) ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / std::max(d1, d2), 1.0 / 5);
    h = std::min({100 * h0, h1, span});
  }

  double t = t0;
  while (dir * (t1 - t) > 0) {
    SCORCH_CHECK(st.accepted + st.rejected < opt.max_steps, "RK45: more than {} steps from t={} to t={} (at t={})",
                 opt.max_steps, t0, t1, t);
    h = std::min(h, std::abs(t1 - t));
    SCORCH_CHECK(h > 1e-14 * std::max(1.0, std::abs(t)), "RK45: step size underflow at t={} (rtol {}, atol {})", t,
                 opt.rtol, opt.atol);
    const double hs = dir * h;
    std::vector<OdeState> k{k1};
    for (int s = 1; s < 6; ++s) k.push_back(eval(t + C[s] * hs, combine(y, hs, k, A[s - 1], static_cast<size_t>(s))));
    auto y_new = combine(y, hs, k, B, 6);
    auto k7 = eval(t + hs, y_new);
    k.push_back(k7);
    OdeState zero;
    for (const auto& yy : y) zero.push_back(torch::zeros_like(yy));
    auto err = combine(zero, hs, k, E, 7);
    double en = rms_norm(err, y, y_new, opt);
    if (en <= 1.0) {
      t = (std::abs(t1 - (t + hs)) < 1e-15) ? t1 : t + hs;
      y = std::move(y_new);
      k1 = std::move(k7);
      ++st.accepted;
      h *= en == 0 ? 10.0 : std::min(10.0, 0.9 * std::pow(en, -0.2));
    } else {
      ++st.rejected;
      h *= std::max(0.2, 0.9 * std::pow(en, -0.2));
    }
  }
  return y;
}

}  // namespace scorch::sampling
