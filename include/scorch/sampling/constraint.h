// Controllable generation by replacement (Song et al. 2021, section 5 and appendix I.2;
// score_sde's controllable_generation.py, get_pc_inpainter / get_pc_colorizer): part of the
// state is known. After every sampler update at time t, the known part is replaced by the
// data forward-noised to t, alpha(t) y + sigma(t) z, and the sample's mean by alpha(t) y.
// Known parts are expressed in a basis: the identity for inpainting (a 0/1 mask over the
// coordinates), the orthogonal colour transform for colourisation (the grey channel
// (R+G+B)/sqrt(3) is known, the two chroma channels are free).
// At the end the known part is set to y exactly (the reference leaves alpha(eps) y there).
// For the probability-flow ODE the known part follows one fixed draw, alpha(t) y +
// sigma(t) z, and the drift of the known part is zero.
#pragma once
#include <torch/torch.h>

#include "scorch/sampling/noise.h"
#include "scorch/sde/sde.h"

namespace scorch::sampling {

class Constraint {
 public:
  // Inpainting: `known` [B,...] data in the model's space, `mask` [B,...] (or broadcastable)
  // 1 where known, 0 where free.
  static Constraint inpainting(torch::Tensor known, torch::Tensor mask);
  // Colourisation: `grey` [B,1,H,W] or [B,3,H,W] (channels averaged) in the model's space;
  // samples are [B,3,H,W].
  static Constraint colorization(const torch::Tensor& grey);

  // The reference's update: x <- known part replaced by alpha y + sigma z (z from `noise`),
  // x_mean <- the new x with its known part alpha y. x, x_mean [B,...]; t the state's time.
  void apply(torch::Tensor& x, torch::Tensor& x_mean, const sde::SDE& sde, double t, const Noise& noise) const;
  // The known part set to alpha(t) y + sigma(t) z for a fixed z [B,...] (the ODE's path).
  torch::Tensor project(const torch::Tensor& x, const sde::SDE& sde, double t, const torch::Tensor& z) const;
  // v with its known part zeroed (a drift that leaves the known part alone).
  torch::Tensor free_part(const torch::Tensor& v) const;
  // x with its known part set to y exactly.
  torch::Tensor finish(const torch::Tensor& x) const;

 private:
  torch::Tensor to_basis(const torch::Tensor& x) const;
  torch::Tensor from_basis(const torch::Tensor& x) const;
  torch::Tensor known_;  // y in the basis [B,...]
  torch::Tensor mask_;   // in the basis
  torch::Tensor M_;      // [3,3] colour transform (undefined: identity)
};

}  // namespace scorch::sampling
