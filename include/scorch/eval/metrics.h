// Sample-quality metrics on feature vectors: Frechet distance (FID; Heusel et al. 2017, as
// pytorch-fid's fid_score.py computes it), Inception Score (Salimans et al. 2016, split
// means as in the usual implementations) and KID (Binkowski et al. 2018: unbiased MMD^2
// with the cubic polynomial kernel over random subsets, as torch-fidelity).
//
// Statistics for FID are accumulated in float64 per rank (n, sum f, sum f f^T) and summed
// over ranks, so that they need only one pass over features that are spread over ranks.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "scorch/dist/communicator.h"

namespace scorch::eval {

// n, sum of features [F] and sum of their outer products [F,F], all float64 on the CPU.
struct Moments {
  int64_t n = 0;
  torch::Tensor sum, outer;
  // Adds the rows of `f` [B,F] (any float dtype, any device).
  void add(const torch::Tensor& f);
  // Sums n, sum and outer over ranks (collective; every rank must have the same F).
  void allreduce(dist::Communicator& comm, int64_t F);
  torch::Tensor mean() const;  // [F]
  // Unbiased covariance [F,F] (np.cov with rows as observations); needs n >= 2.
  torch::Tensor covariance() const;
};

struct Frechet {
  double value = 0;
  bool used_eps = false;     // the product was not finite: retried with eps on both diagonals
  double max_imaginary = 0;  // the largest imaginary part the square root had (dropped)
};
// |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2) in float64. tr sqrt(S1 S2) is the sum
// of the square roots of the eigenvalues of sqrt(S1) S2 sqrt(S1) (symmetric: eigh), whose
// real part is what scipy's sqrtm gives pytorch-fid; negative round-off eigenvalues give the
// small imaginary part pytorch-fid drops. As pytorch-fid: if the result is not finite the
// covariances get eps on their diagonals, and an imaginary part above 1e-3 is an error.
Frechet frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                         const torch::Tensor& sigma2, double eps = 1e-6);

struct MeanStd {
  double mean = 0;
  double std = 0;
};
// Inception Score from logits [N,K] (softmax taken here) in `splits` contiguous splits by
// row: exp(E_x KL(p(y|x) || p(y))) per split; mean and (population) std over splits.
MeanStd inception_score(const torch::Tensor& logits, int64_t splits);
// KID between features a [N,F] and b [M,F]: `subsets` subsets of `subset_size` rows drawn
// without replacement from each (capped at min(N, M)) with generator seed `seed`; the
// kernel (x.y / F + 1)^3; mean and std of the unbiased MMD^2 over subsets.
MeanStd kernel_inception_distance(const torch::Tensor& a, const torch::Tensor& b, int64_t subsets, int64_t subset_size,
                                  uint64_t seed);

}  // namespace scorch::eval
