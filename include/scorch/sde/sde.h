// The forward SDE dx = f(x,t) dt + g(t) dw on t in [0, T=1], its closed-form perturbation
// kernel and prior, and the reverse-time / probability-flow drifts built from a score.
// Variants: VE, VP, sub-VP (Song et al. 2021, section 3.4; score_sde's sde_lib.py);
// `make_sde` picks one from `training.sde`. Its discretisation tables live on the device of
// the tensors it works with (`to`); every tensor it creates takes its options from its input.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <utility>

#include "scorch/core/config.h"

namespace scorch::sde {

// v [B] reshaped to [B,1,...,1] to broadcast against `like` [B,...].
torch::Tensor per_item(const torch::Tensor& v, const torch::Tensor& like);

class SDE {
 public:
  explicit SDE(int64_t num_scales) : N_(num_scales) {}
  virtual ~SDE() = default;
  double T() const { return 1.0; }
  int64_t N() const { return N_; }
  virtual std::string name() const = 0;
  // Moves the discretisation tables (betas, sigmas) to `device`: call once, before use.
  virtual void to(const torch::Device& device) {}

  // Drift f(x,t) [B,...] and diffusion g(t) [B], for x [B,...] and t [B].
  virtual std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& t) const = 0;
  // Mean [B,...] and std [B] of p_0t(x_t | x_0): alpha(t) x_0 and sigma(t).
  std::pair<torch::Tensor, torch::Tensor> marginal_prob(const torch::Tensor& x0, const torch::Tensor& t) const {
    return {per_item(alpha(t), x0) * x0, sigma(t)};
  }
  // The perturbation kernel x_t = alpha(t) x_0 + sigma(t) z: mean coefficient alpha(t) [B],
  // std sigma(t) [B], and log-SNR lambda(t) = log alpha(t) - log sigma(t) [B], decreasing in
  // t (the time change of DDIM and DPM-Solver; Lu et al. 2022, section 3.1). t [B].
  virtual torch::Tensor alpha(const torch::Tensor& t) const = 0;
  virtual torch::Tensor sigma(const torch::Tensor& t) const = 0;
  torch::Tensor lambda(const torch::Tensor& t) const { return alpha(t).log() - sigma(t).log(); }
  // The same at one time, in float64.
  double alpha_at(double t) const;
  double sigma_at(double t) const;
  double lambda_at(double t) const { return std::log(alpha_at(t)) - std::log(sigma_at(t)); }
  // The time in [0, T] with lambda(t) = l (bisection to machine precision; l is clamped to
  // the range of lambda on [1e-12, T]).
  double time_of_lambda(double l) const;
  // A draw from p_T, shape [B,...], on the generator's device.
  virtual torch::Tensor prior_sampling(at::IntArrayRef shape, at::Generator& gen) const = 0;
  // The prior draw made from standard normal z [B,...] (what prior_sampling does with randn).
  virtual torch::Tensor prior_from_normal(const torch::Tensor& z) const { return z; }
  // log p_T(z) per item, [B].
  virtual torch::Tensor prior_logp(const torch::Tensor& z) const = 0;
  // Smallest time the samplers integrate to: 1e-5 (VE), 1e-3 (VP, sub-VP).
  virtual double sampling_eps() const = 0;
  // The label the network is conditioned on: 999 t (VP, sub-VP) or sigma(t) (VE), [B].
  virtual torch::Tensor time_label(const torch::Tensor& t) const = 0;
  // Score from the network output at t: -out / std (VP, sub-VP) or out (VE).
  virtual torch::Tensor score_from_output(const torch::Tensor& out, const torch::Tensor& t) const = 0;

  // One step of the forward discretisation at t [B]: (f [B,...], G [B]) with
  // x_{i+1} = x_i + f + G z. Default Euler-Maruyama with dt = 1/N; VE and VP override it
  // with the SMLD and DDPM chains (score_sde's sde_lib.py, VESDE/VPSDE.discretize).
  virtual std::pair<torch::Tensor, torch::Tensor> discretize(const torch::Tensor& x, const torch::Tensor& t) const;
  // Discrete step index i = floor(t (N-1) / T) of t [B], int64 [B].
  torch::Tensor step_index(const torch::Tensor& t) const;

  // Reverse-time drift f - g^2 score, or the probability-flow drift f - g^2 score / 2.
  torch::Tensor reverse_drift(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& score,
                              bool probability_flow) const;
  // Reverse discretisation: (f - G^2 score (x 1/2 for the flow), G or 0 for the flow).
  std::pair<torch::Tensor, torch::Tensor> reverse_discretize(const torch::Tensor& x, const torch::Tensor& t,
                                                             const torch::Tensor& score, bool probability_flow) const;

 private:
  int64_t N_;
};


// log N(z; 0, s^2 I) per item, [B].
torch::Tensor gaussian_logp(const torch::Tensor& z, double s);

std::unique_ptr<SDE> make_sde(const Config& cfg);

}  // namespace scorch::sde
