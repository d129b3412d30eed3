// Sampling the reverse-time SDE from the prior. A sampler is a loop over a time schedule
// (sampling/schedule.h) of predictor steps from t to t_next:
//  - pc: predictor-corrector on score_sde's grid; at each time the corrector runs first,
//    then the predictor (score_sde's sampling.py, get_pc_sampler);
//  - ddim (Song, Meng & Ermon 2021), dpm_solver (DPM-Solver++ 2M, Lu et al. 2022) and heun
//    (EDM, Karras et al. 2022): few-step solvers of the probability-flow ODE written with the
//    SDE's alpha(t), sigma(t) and lambda(t), on the log-SNR or EDM schedule;
//  - ode: the probability-flow ODE with adaptive RK45.
// A Constraint (sampling/constraint.h) projects the state after every update (inpainting,
// colorisation). Tensors live on the device of the noise and the input.
// Predictors: euler_maruyama, reverse_diffusion, ancestral_sampling, none; correctors:
// langevin, ald, none (core/names.h lists them; the factories read that list).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "scorch/core/config.h"
#include "scorch/models/score_fn.h"
#include "scorch/sampling/noise.h"
#include "scorch/sampling/rk45.h"
#include "scorch/sampling/schedule.h"
#include "scorch/sde/sde.h"

namespace scorch::sampling {

class Constraint;

struct SampleResult {
  torch::Tensor x;  // [B,...] final sample (x_mean of the last step if denoising)
  int64_t nfe = 0;  // score evaluations per item (a guided score counts once per evaluation)
};

struct StepResult {
  torch::Tensor x;       // [B,...] with noise
  torch::Tensor x_mean;  // [B,...] the same step without its final noise
};

// Progress callback: (steps done, steps total).
using Progress = std::function<void(int64_t, int64_t)>;

// One step of a reverse-time solver from time t to t_next < t (all items share the times).
// Multistep solvers (DPM-Solver++ 2M) keep what they need of earlier steps: use one object
// per sampling run.
class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual StepResult step(const torch::Tensor& x, double t, double t_next, const Noise& noise) = 0;
};

class Corrector {
 public:
  virtual ~Corrector() = default;
  // Langevin-type steps at time t (the state stays at t).
  virtual StepResult step(const torch::Tensor& x, double t, const Noise& noise) = 0;
};

// `score` and `sde` must outlive the returned objects.
std::unique_ptr<Predictor> make_predictor(const std::string& name, const sde::SDE& sde,
                                          const models::ScoreFn& score, bool probability_flow);
std::unique_ptr<Corrector> make_corrector(const std::string& name, const sde::SDE& sde,
                                          const models::ScoreFn& score, double snr, int64_t n_steps);
// The step of a fast method (ddim with `eta`, dpm_solver, heun) for a schedule of `steps`
// steps (DPM-Solver++ takes a first-order last step when steps < 15: the lower_order_final
// of its reference implementation, which stabilises very few steps).
std::unique_ptr<Predictor> make_fast_step(const std::string& method, const sde::SDE& sde,
                                          const models::ScoreFn& score, double eta, int64_t steps);

// t [B] float32 on `like`'s device, all equal to `t`.
torch::Tensor time_vector(double t, const torch::Tensor& like);

// PC sampling: x ~ prior; for t in linspace(T, eps, N): corrector, then predictor.
// `shape` is [B,...]. NFE counts the score evaluations actually made.
SampleResult pc_sample(const std::string& predictor, const std::string& corrector, const sde::SDE& sde,
                       const models::ScoreFn& score, at::IntArrayRef shape, const SamplingConfig& cfg, double eps,
                       const Noise& noise, const Progress& progress = {}, const Constraint* constraint = nullptr);

// A fast method (sampling.method ddim | dpm_solver | heun) over its schedule from the prior.
SampleResult fast_sample(const SamplingConfig& cfg, const sde::SDE& sde, const models::ScoreFn& score,
                         at::IntArrayRef shape, double eps, const Noise& noise, const Progress& progress = {},
                         const Constraint* constraint = nullptr);

// Carries x [B,...] along the probability-flow ODE from t0 to t1 (either direction) with
// RK45 over the whole batch as one state: eps -> T encodes data to latents, T -> eps decodes.
// With a constraint the drift is taken at the state whose known part follows
// alpha(t) y + sigma(t) z_known, and is zero on the known part.
SampleResult ode_flow(const sde::SDE& sde, const models::ScoreFn& score, const torch::Tensor& x, double t0, double t1,
                      const OdeOptions& opt, const Constraint* constraint = nullptr,
                      const torch::Tensor& z_known = torch::Tensor());

// Probability-flow ODE from T to eps with RK45 over the whole batch as one state; with
// `denoise`, one reverse-diffusion step at eps (keeping its mean).
SampleResult ode_sample(const sde::SDE& sde, const models::ScoreFn& score, at::IntArrayRef shape,
                        const OdeOptions& opt, double eps, bool denoise, const Noise& noise,
                        const Constraint* constraint = nullptr);

// Every setting that changes what the sampler named by `cfg` draws, one "key = value" per
// line in a fixed order (method and its parameters, N, the SDE, guidance, eval.seed,
// eval.batch_size), and a short tag for names ("pc-reverse_diffusion-langevin", "ode",
// "ddim20", "cfg2-balanced"). The farm keys a sample run by them, so two different samplers
// never share a run.
std::string settings(const Config& cfg);
std::string short_name(const Config& cfg);

// The sampler named by `cfg.sampling` on `shape`.
SampleResult sample(const Config& cfg, const sde::SDE& sde, const models::ScoreFn& score, at::IntArrayRef shape,
                    const Noise& noise, const Progress& progress = {}, const Constraint* constraint = nullptr);

}  // namespace scorch::sampling
