// FIR resampling of image batches: StyleGAN2's upfirdn2d and the up/down-sampling layers
// NCSN++ builds on it, written with plain LibTorch ops (any device, any dtype, autograd).
// Kernels are 1-D lists applied separably and normalised as in the reference.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace scorch::models::fir {

// outer(k, k) / sum, times `gain`: [K, K] float64 on the CPU.
torch::Tensor setup_kernel(const std::vector<int64_t>& k, double gain = 1.0);

// Upsample by zero insertion, pad (pad0 before, pad1 after, negative crops), correlate with
// the flipped kernel (true convolution), keep every `down`-th sample.
// x [B,C,H,W], kernel [kh,kw] -> [B,C,(H*up+pad0+pad1-kh)/down+1, ...].
torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& kernel, int64_t up, int64_t down, int64_t pad0,
                        int64_t pad1);

// [B,C,H,W] -> [B,C,2H,2W] and [B,C,H/2,W/2] with FIR kernel k (gain 1 for constant input).
torch::Tensor upsample_2d(const torch::Tensor& x, const std::vector<int64_t>& k, int64_t factor = 2);
torch::Tensor downsample_2d(const torch::Tensor& x, const std::vector<int64_t>& k, int64_t factor = 2);

// Fused FIR upsampling then conv with w [O,I,kh,kw] (odd kh = kw): [B,I,H,W] -> [B,O,2H,2W].
torch::Tensor upsample_conv_2d(const torch::Tensor& x, const torch::Tensor& w, const std::vector<int64_t>& k,
                               int64_t factor = 2);
// Fused conv with w [O,I,kh,kw] then FIR downsampling: [B,I,H,W] -> [B,O,H/2,W/2].
torch::Tensor conv_downsample_2d(const torch::Tensor& x, const torch::Tensor& w, const std::vector<int64_t>& k,
                                 int64_t factor = 2);

// Nearest-neighbour upsampling and box-filter downsampling: the non-FIR BigGAN resampling.
torch::Tensor naive_upsample_2d(const torch::Tensor& x, int64_t factor = 2);
torch::Tensor naive_downsample_2d(const torch::Tensor& x, int64_t factor = 2);

}  // namespace scorch::models::fir
