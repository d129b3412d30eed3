// Sampling the reverse-time SDE from the prior. Predictor-corrector (PC) sampling: at each
// of N times from T to eps the corrector runs first, then the predictor (score_sde's
// sampling.py, get_pc_sampler); the ODE sampler integrates the probability-flow ODE with
// adaptive RK45 instead. Tensors live on the device of the generator and the input.
// Predictors: euler_maruyama, reverse_diffusion, ancestral_sampling, none.
// Correctors: langevin, ald, none. Factories build them by name and list the valid names.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "scorch/core/config.h"
#include "scorch/models/score_fn.h"
#include "scorch/sampling/noise.h"
#include "scorch/sampling/rk45.h"
#include "scorch/sde/sde.h"

namespace scorch::sampling {

struct SampleResult {
  torch::Tensor x;  // [B,...] final sample (x_mean of the last step if denoising)
  int64_t nfe = 0;  // score evaluations per item
};

struct StepResult {
  torch::Tensor x;       // [B,...] with noise
  torch::Tensor x_mean;  // [B,...] the same step without its final noise
};

// Progress callback: (steps done, steps total).
using Progress = std::function<void(int64_t, int64_t)>;

class Predictor {
 public:
  virtual ~Predictor() = default;
  // One reverse step at time t [B] (all equal); draws noise from `noise`.
  virtual StepResult step(const torch::Tensor& x, const torch::Tensor& t, const Noise& noise) = 0;
};

class Corrector {
 public:
  virtual ~Corrector() = default;
  virtual StepResult step(const torch::Tensor& x, const torch::Tensor& t, const Noise& noise) = 0;
};

// `score` and `sde` must outlive the returned objects.
std::unique_ptr<Predictor> make_predictor(const std::string& name, const sde::SDE& sde,
                                          const models::ScoreFn& score, bool probability_flow);
std::unique_ptr<Corrector> make_corrector(const std::string& name, const sde::SDE& sde,
                                          const models::ScoreFn& score, double snr, int64_t n_steps);

// PC sampling: x ~ prior; for t in linspace(T, eps, N): corrector, then predictor.
// `shape` is [B,...]. NFE counts the score evaluations actually made.
SampleResult pc_sample(const std::string& predictor, const std::string& corrector, const sde::SDE& sde,
                       const models::ScoreFn& score, at::IntArrayRef shape, const SamplingConfig& cfg, double eps,
                       const Noise& noise, const Progress& progress = {});

// Carries x [B,...] along the probability-flow ODE from t0 to t1 (either direction) with
// RK45 over the whole batch as one state: eps -> T encodes data to latents, T -> eps decodes.
SampleResult ode_flow(const sde::SDE& sde, const models::ScoreFn& score, const torch::Tensor& x, double t0, double t1,
                      const OdeOptions& opt);

// Probability-flow ODE from T to eps with RK45 over the whole batch as one state; with
// `denoise`, one reverse-diffusion step at eps (keeping its mean).
SampleResult ode_sample(const sde::SDE& sde, const models::ScoreFn& score, at::IntArrayRef shape,
                        const OdeOptions& opt, double eps, bool denoise, const Noise& noise);

// Every setting that changes what the sampler named by `cfg` draws, one "key = value" per
// line in a fixed order (method and its parameters, N, the SDE, eval.seed, eval.batch_size),
// and a short tag for names ("pc-reverse_diffusion-langevin", "ode"). The farm keys a
// sample run by them, so two different samplers never share a run.
std::string settings(const Config& cfg);
std::string short_name(const Config& cfg);

// The sampler named by `cfg.sampling` (method pc or ode) on `shape`.
SampleResult sample(const Config& cfg, const sde::SDE& sde, const models::ScoreFn& score, at::IntArrayRef shape,
                    const Noise& noise, const Progress& progress = {});

}  // namespace scorch::sampling
