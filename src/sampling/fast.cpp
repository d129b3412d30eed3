// Few-step solvers of the probability-flow ODE, each one Predictor step from t to t_next,
// written with the SDE's perturbation kernel x_t = alpha(t) x_0 + sigma(t) z and the data
// prediction x0(x, t) = (x + sigma^2 score) / alpha (Tweedie):
//  - DDIM (Song, Meng & Ermon 2021, eq. 12), generalised to any (alpha, sigma):
//      x' = alpha' x0 + sqrt(sigma'^2 - c^2) eps + c z,  eps = -sigma score,
//      c = eta sigma' sqrt(1 - (alpha sigma' / (alpha' sigma))^2)   (eta = 1: the DDPM
//      posterior's std; eta = 0: deterministic);
//  - DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), h = lambda' - lambda:
//      x' = (sigma'/sigma) x - alpha' expm1(-h) D,  D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1},
//      r = h_{i-1} / h_i, first-order at the first step (and the last when steps < 15).
//      VE has alpha = 1, lambda = -log sigma: the same formula is its time change;
//  - Heun in sigma space (Karras et al. 2022, Algorithm 1 without churn), VE only:
//      dx/dsigma = -sigma score; Euler predictor, trapezoidal corrector (2 NFE per step).
#include <cmath>

#include "scorch/core/error.h"
#include "scorch/sampling/sampler.h"

namespace scorch::sampling {

namespace {

// Tweedie's data prediction x0(x, t) = (x + sigma^2 score) / alpha.
torch::Tensor data_prediction(const torch::Tensor& x, const torch::Tensor& score, double alpha, double sigma) {
  return (x + sigma * sigma * score) / alpha;
}

class Ddim final : public Predictor {
 public:
  Ddim(const sde::SDE& s, const models::ScoreFn& f, double eta) : s_(s), score_(f), eta_(eta) {}
  StepResult step(const torch::Tensor& x, double t, double t_next, const Noise& noise) override {
    const double a = s_.alpha_at(t), sg = s_.sigma_at(t), a1 = s_.alpha_at(t_next), sg1 = s_.sigma_at(t_next);
    auto score = score_(x, time_vector(t, x));
    auto x0 = data_prediction(x, score, a, sg);
    auto eps = -sg * score;
    const double ratio = (a * sg1) / (a1 * sg);
    const double c = eta_ * sg1 * std::sqrt(std::max(0.0, 1.0 - ratio * ratio));
    auto mean = a1 * x0 + std::sqrt(std::max(0.0, sg1 * sg1 - c * c)) * eps;
    if (c == 0.0) return {mean, mean};
    return {mean + c * noise.randn(x.sizes()), mean};
  }

 private:
  const sde::SDE& s_;
  const models::ScoreFn& score_;
  double eta_;
};

class DpmSolverPP2M final : public Predictor {
 public:
  DpmSolverPP2M(const sde::SDE& s, const models::ScoreFn& f, int64_t steps) : s_(s), score_(f), steps_(steps) {}
  StepResult step(const torch::Tensor& x, double t, double t_next, const Noise&) override {
    const double sg = s_.sigma_at(t), a1 = s_.alpha_at(t_next), sg1 = s_.sigma_at(t_next);
    const double h = s_.lambda_at(t_next) - s_.lambda_at(t);
    auto score = score_(x, time_vector(t, x));
    auto x0 = data_prediction(x, score, s_.alpha_at(t), sg);
    ++done_;
    const bool last = done_ == steps_;
    torch::Tensor D = x0;
    if (prev_x0_.defined() && !(last && steps_ < 15)) {
      const double r = prev_h_ / h;
      D = (1.0 + 0.5 / r) * x0 - (0.5 / r) * prev_x0_;
    }
    prev_x0_ = x0;
    prev_h_ = h;
    auto out = (sg1 / sg) * x - a1 * std::expm1(-h) * D;
    return {out, out};
  }

 private:
  const sde::SDE& s_;
  const models::ScoreFn& score_;
  int64_t steps_, done_ = 0;
  torch::Tensor prev_x0_;
  double prev_h_ = 0;
};

class Heun final : public Predictor {
 public:
  Heun(const sde::SDE& s, const models::ScoreFn& f) : s_(s), score_(f) {
    SCORCH_CHECK(s.name() == "vesde", "sampling.method = \"heun\" exists for vesde (got {})", s.name());
  }
  StepResult step(const torch::Tensor& x, double t, double t_next, const Noise&) override {
    const double sg = s_.sigma_at(t), sg1 = s_.sigma_at(t_next);
    auto d = -sg * score_(x, time_vector(t, x));
    auto xe = x + (sg1 - sg) * d;
    auto d1 = -sg1 * score_(xe, time_vector(t_next, x));
    auto out = x + (sg1 - sg) * 0.5 * (d + d1);
    return {out, out};
  }

 private:
  const sde::SDE& s_;
  const models::ScoreFn& score_;
};

}  // namespace

std::unique_ptr<Predictor> make_fast_step(const std::string& method, const sde::SDE& s, const models::ScoreFn& score,
                                          double eta, int64_t steps) {
  if (method == "ddim") return std::make_unique<Ddim>(s, score, eta);
  if (method == "dpm_solver") return std::make_unique<DpmSolverPP2M>(s, score, steps);
  if (method == "heun") return std::make_unique<Heun>(s, score);
  SCORCH_THROW("'{}' is not a fast sampling method (ddim, dpm_solver, heun)", method);
}

}  // namespace scorch::sampling
