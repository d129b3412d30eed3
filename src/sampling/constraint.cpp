// Replacement-based inpainting and colourisation (see sampling/constraint.h).
#include "scorch/sampling/constraint.h"

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/sampling/sampler.h"

namespace scorch::sampling {

Constraint Constraint::inpainting(torch::Tensor known, torch::Tensor mask) {
  Constraint c;
  c.mask_ = mask.to(known.device(), known.scalar_type());
  c.known_ = known * c.mask_;
  return c;
}

Constraint Constraint::colorization(const torch::Tensor& grey_in) {
  SCORCH_CHECK(grey_in.dim() == 4 && (grey_in.size(1) == 1 || grey_in.size(1) == 3),
               "colorization: the grey images must be [B,1,H,W] or [B,3,H,W] (got [{}])",
               fmt::join(grey_in.sizes(), ", "));
  auto grey = grey_in.size(1) == 3 ? grey_in.mean(1, true) : grey_in;
  Constraint c;
  // Orthonormal columns: (1,1,1)/sqrt3 (grey), (-2,1,1)/sqrt6 and (0,1,-1)/sqrt2 (chroma):
  // the reference's decoupling matrix M, applied as einsum('bihw,ij->bjhw').
  const double a = 1.0 / std::sqrt(3.0), b = 1.0 / std::sqrt(6.0), d = 1.0 / std::sqrt(2.0);
  c.M_ = torch::tensor({a, -2 * b, 0.0, a, b, d, a, b, -d}, grey.options()).reshape({3, 3});
  c.known_ = c.to_basis(grey.expand({-1, 3, -1, -1}).contiguous());
  c.mask_ = torch::zeros({1, 3, 1, 1}, grey.options());
  c.mask_.index_put_({0, 0}, 1.0);
  c.known_ = c.known_ * c.mask_;
  return c;
}

torch::Tensor Constraint::to_basis(const torch::Tensor& x) const {
  if (!M_.defined()) return x;
  return torch::matmul(x.permute({0, 2, 3, 1}), M_.to(x.scalar_type())).permute({0, 3, 1, 2});
}

torch::Tensor Constraint::from_basis(const torch::Tensor& x) const {
  if (!M_.defined()) return x;
  return torch::matmul(x.permute({0, 2, 3, 1}), M_.t().to(x.scalar_type())).permute({0, 3, 1, 2});
}

void Constraint::apply(torch::Tensor& x, torch::Tensor& x_mean, const sde::SDE& sde, double t,
                       const Noise& noise) const {
  SCORCH_CHECK(x.sizes() == known_.sizes(), "constraint: the state is [{}] but the known data are [{}]",
               fmt::join(x.sizes(), ", "), fmt::join(known_.sizes(), ", "));
  const double a = sde.alpha_at(t), s = sde.sigma_at(t);
  auto mean = a * known_;
  auto noised = mean + s * noise.randn(x.sizes());
  auto free = 1.0 - mask_;
  x = from_basis(to_basis(x) * free + noised * mask_);
  x_mean = from_basis(to_basis(x) * free + mean * mask_);
}

torch::Tensor Constraint::project(const torch::Tensor& x, const sde::SDE& sde, double t, const torch::Tensor& z) const {
  const double a = sde.alpha_at(t), s = sde.sigma_at(t);
  return from_basis(to_basis(x) * (1.0 - mask_) + (a * known_ + s * z) * mask_);
}

torch::Tensor Constraint::free_part(const torch::Tensor& v) const {
  return from_basis(to_basis(v) * (1.0 - mask_));
}

torch::Tensor Constraint::finish(const torch::Tensor& x) const {
  return from_basis(to_basis(x) * (1.0 - mask_) + known_);
}

}  // namespace scorch::sampling
