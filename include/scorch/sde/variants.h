// The three SDEs of Song et al. 2021 (eqs. 9, 11 and 15; score_sde's sde_lib.py): VE (SMLD
// limit), VP (DDPM limit), sub-VP. Each lives in its own .cpp.
#pragma once
#include <cmath>

#include "scorch/sde/sde.h"

namespace scorch::sde {

class VPSDE : public SDE {
 public:
  VPSDE(double beta_min, double beta_max, int64_t N)
      : SDE(N),
        beta_min_(beta_min),
        beta_max_(beta_max),
        betas_(torch::linspace(beta_min / static_cast<double>(N), beta_max / static_cast<double>(N), N,
                               torch::kFloat64)) {}
  std::string name() const override { return "vpsde"; }
  void to(const torch::Device& device) override { betas_ = betas_.to(device); }
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  // alpha = exp(m(t)); sigma = sqrt(1 - exp(2 m(t))).
  torch::Tensor alpha(const torch::Tensor& t) const override { return log_mean_coeff(t).exp(); }
  torch::Tensor sigma(const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(at::IntArrayRef shape, at::Generator& gen) const override;
  torch::Tensor prior_logp(const torch::Tensor& z) const override;
  double sampling_eps() const override { return 1e-3; }
  torch::Tensor time_label(const torch::Tensor& t) const override { return t * 999.0; }
  torch::Tensor score_from_output(const torch::Tensor& out, const torch::Tensor& t) const override;
  // log of the mean coefficient: -t^2 (b1-b0)/4 - t b0/2, [B].
  torch::Tensor log_mean_coeff(const torch::Tensor& t) const;
  // DDPM chain: x_{i+1} = sqrt(alpha_i) x_i + sqrt(beta_i) z.
  std::pair<torch::Tensor, torch::Tensor> discretize(const torch::Tensor& x, const torch::Tensor& t) const override;
  // betas_i = linspace(beta_min/N, beta_max/N, N) [N] (float64); alphas = 1 - betas.
  const torch::Tensor& discrete_betas() const { return betas_; }
  torch::Tensor alphas() const { return 1.0 - betas_; }
  // sqrt(alphas_cumprod) and sqrt(1 - alphas_cumprod) of the DDPM chain, [N] float64
  // (score_sde's sde_lib.py VPSDE.sqrt_alphas_cumprod / sqrt_1m_alphas_cumprod).
  std::pair<torch::Tensor, torch::Tensor> ddpm_coefficients() const;

 protected:
  double beta_min_, beta_max_;
  torch::Tensor betas_;
};

class SubVPSDE : public VPSDE {
 public:
  using VPSDE::VPSDE;
  std::string name() const override { return "subvpsde"; }
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  // Euler-Maruyama (sub-VP has no discrete chain); the DDPM alphas still serve Langevin.
  std::pair<torch::Tensor, torch::Tensor> discretize(const torch::Tensor& x, const torch::Tensor& t) const override {
    return SDE::discretize(x, t);
  }
  // sigma = 1 - exp(2 m(t)) (the variance is its square).
  torch::Tensor sigma(const torch::Tensor& t) const override;
};

class VESDE : public SDE {
 public:
  VESDE(double sigma_min, double sigma_max, int64_t N)
      : SDE(N),
        sigma_min_(sigma_min),
        sigma_max_(sigma_max),
        sigmas_(torch::exp(torch::linspace(std::log(sigma_min), std::log(sigma_max), N, torch::kFloat64))) {}
  std::string name() const override { return "vesde"; }
  void to(const torch::Device& device) override { sigmas_ = sigmas_.to(device); }
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  torch::Tensor alpha(const torch::Tensor& t) const override { return torch::ones_like(t); }
  torch::Tensor prior_sampling(at::IntArrayRef shape, at::Generator& gen) const override;
  torch::Tensor prior_from_normal(const torch::Tensor& z) const override;
  torch::Tensor prior_logp(const torch::Tensor& z) const override;
  double sampling_eps() const override { return 1e-5; }
  torch::Tensor time_label(const torch::Tensor& t) const override { return sigma(t); }
  torch::Tensor score_from_output(const torch::Tensor& out, const torch::Tensor& t) const override { return out; }
  // sigma(t) = sigma_min (sigma_max / sigma_min)^t.
  torch::Tensor sigma(const torch::Tensor& t) const override;
  // The time with sigma(t) = s (EDM's sigma-space schedules map back through it).
  double time_of_sigma(double s) const { return std::log(s / sigma_min_) / std::log(sigma_max_ / sigma_min_); }
  // SMLD chain: f = 0, G = sqrt(sigma_i^2 - sigma_{i-1}^2), sigma_{-1} = 0.
  std::pair<torch::Tensor, torch::Tensor> discretize(const torch::Tensor& x, const torch::Tensor& t) const override;
  // sigmas_i geometric from sigma_min to sigma_max [N] (float64).
  const torch::Tensor& discrete_sigmas() const { return sigmas_; }
  // (sigma_i, sigma_{i-1} or 0) at the step index of t [B], float32.
  std::pair<torch::Tensor, torch::Tensor> sigma_pair(const torch::Tensor& t) const;

 private:
  double sigma_min_, sigma_max_;
  torch::Tensor sigmas_;
};

}  // namespace scorch::sde
