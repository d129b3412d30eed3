// The exact score of a Gaussian mixture p_0 = sum_k w_k N(mu_k, s_k^2 I) under any of the
// SDEs: p_t = sum_k w_k N(a(t) mu_k, (a(t)^2 s_k^2 + std(t)^2) I), with a(t) the mean
// coefficient and std(t) the perturbation std. Its components double as classes: the
// conditional scores and the classifier posterior are closed-form too. A ground truth for samplers and likelihoods.
#pragma once
#include <torch/torch.h>

#include "scorch/core/config.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"

namespace scorch::models {

class AnalyticGMM {
 public:
  explicit AnalyticGMM(const ModelConfig& cfg);  // reads gmm_means, gmm_stds, gmm_weights
  // grad_x log p_t(x): x [B,D], t [B] -> [B,D].
  torch::Tensor score(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t) const;
  // The class-conditional score grad_x log p_t(x | c) with the components as the classes:
  // labels int64 [B] in [0, K], K (the null label) meaning the unconditional mixture.
  torch::Tensor class_score(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t,
                            const torch::Tensor& labels) const;
  // The exact classifier: log p_t(c | x) for every class, [B,K] float64 (the posterior of
  // the components given the perturbed point).
  torch::Tensor log_posterior(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t) const;
  int64_t num_classes() const { return means_.size(0); }
  // log p_t(x) in nats, [B] (t = 0 gives the data density).
  torch::Tensor logp(const sde::SDE& s, const torch::Tensor& x, const torch::Tensor& t) const;
  // Moves the mixture's parameters to `device` (where score and logp compute).
  void to(const torch::Device& device);
  // n exact samples of p_0, [n,D], and their component indices [n], on the generator's device.
  std::pair<torch::Tensor, torch::Tensor> sample(int64_t n, at::Generator& gen) const;
  int64_t dim() const { return means_.size(1); }

 private:
  // Per component: log w_k + log N_k(x), [B,K], and (x - a mu_k) / v_k, [B,K,D].
  std::pair<torch::Tensor, torch::Tensor> components(const sde::SDE& s, const torch::Tensor& x,
                                                     const torch::Tensor& t) const;
  torch::Tensor means_;    // [K,D] float64
  torch::Tensor stds_;     // [K]
  torch::Tensor log_w_;    // [K] normalised
};

}  // namespace scorch::models
