// The three SDEs of Song et al.: VE (SMLD limit), VP (DDPM limit), sub-VP. Formulas are
// those of REFERENCE.md; each lives in its own .cpp.
#pragma once
#include "scorch/sde/sde.h"

namespace scorch::sde {

class VPSDE : public SDE {
 public:
  VPSDE(double beta_min, double beta_max, int64_t N) : SDE(N), beta_min_(beta_min), beta_max_(beta_max) {}
  std::string name() const override { return "vpsde"; }
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> marginal_prob(const torch::Tensor& x0, const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(at::IntArrayRef shape, at::Generator& gen) const override;
  torch::Tensor prior_logp(const torch::Tensor& z) const override;
  double sampling_eps() const override { return 1e-3; }
  torch::Tensor time_label(const torch::Tensor& t) const override { return t * 999.0; }
  torch::Tensor score_from_output(const torch::Tensor& out, const torch::Tensor& t) const override;
  // log of the mean coefficient: -t^2 (b1-b0)/4 - t b0/2, [B].
  torch::Tensor log_mean_coeff(const torch::Tensor& t) const;

 protected:
  double beta_min_, beta_max_;
};

class SubVPSDE : public VPSDE {
 public:
  using VPSDE::VPSDE;
  std::string name() const override { return "subvpsde"; }
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> marginal_prob(const torch::Tensor& x0, const torch::Tensor& t) const override;
};

class VESDE : public SDE {
 public:
  VESDE(double sigma_min, double sigma_max, int64_t N) : SDE(N), sigma_min_(sigma_min), sigma_max_(sigma_max) {}
  std::string name() const override { return "vesde"; }
  std::pair<torch::Tensor, torch::Tensor> sde(const torch::Tensor& x, const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> marginal_prob(const torch::Tensor& x0, const torch::Tensor& t) const override;
  torch::Tensor prior_sampling(at::IntArrayRef shape, at::Generator& gen) const override;
  torch::Tensor prior_logp(const torch::Tensor& z) const override;
  double sampling_eps() const override { return 1e-5; }
  torch::Tensor time_label(const torch::Tensor& t) const override { return sigma(t); }
  torch::Tensor score_from_output(const torch::Tensor& out, const torch::Tensor& t) const override { return out; }
  torch::Tensor sigma(const torch::Tensor& t) const;

 private:
  double sigma_min_, sigma_max_;
};

}  // namespace scorch::sde
