// FIR resampling (upfirdn2d) as zero insertion + padding + one single-channel conv2d over
// the B*C planes; the fused conv variants follow StyleGAN2's padding arithmetic so the
// results equal "resample, then conv" without padding twice.
#include "scorch/models/fir.h"

#include "scorch/core/error.h"

namespace scorch::models::fir {

torch::Tensor setup_kernel(const std::vector<int64_t>& k, double gain) {
  SCORCH_CHECK(!k.empty(), "FIR kernel must not be empty");
  std::vector<double> kd(k.begin(), k.end());
  auto k1 = torch::tensor(kd, torch::kFloat64);
  auto k2 = torch::outer(k1, k1);
  auto s = k2.sum().item<double>();
  SCORCH_CHECK(s != 0.0, "FIR kernel sums to zero");
  return k2 / s * gain;
}

torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& kernel, int64_t up, int64_t down, int64_t pad0,
                        int64_t pad1) {
  SCORCH_CHECK(x.dim() == 4, "upfirdn2d expects [B,C,H,W], got {} dims", x.dim());
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t kh = kernel.size(0), kw = kernel.size(1);
  auto y = x.reshape({B * C, 1, H, W});
  if (up > 1) {
    y = y.reshape({B * C, 1, H, 1, W, 1});
    y = torch::constant_pad_nd(y, {0, up - 1, 0, 0, 0, up - 1});
    y = y.reshape({B * C, 1, H * up, W * up});
  }
  y = torch::constant_pad_nd(y, {pad0, pad1, pad0, pad1});
  auto w = kernel.flip({0, 1}).to(x.options()).reshape({1, 1, kh, kw});
  y = torch::conv2d(y, w, {}, /*stride=*/down);
  return y.reshape({B, C, y.size(2), y.size(3)});
}

torch::Tensor upsample_2d(const torch::Tensor& x, const std::vector<int64_t>& k, int64_t factor) {
  auto kk = setup_kernel(k, static_cast<double>(factor * factor));
  const int64_t p = kk.size(0) - factor;
  return upfirdn2d(x, kk, factor, 1, (p + 1) / 2 + factor - 1, p / 2);
}

torch::Tensor downsample_2d(const torch::Tensor& x, const std::vector<int64_t>& k, int64_t factor) {
  auto kk = setup_kernel(k);
  const int64_t p = kk.size(0) - factor;
  return upfirdn2d(x, kk, 1, factor, (p + 1) / 2, p / 2);
}

torch::Tensor upsample_conv_2d(const torch::Tensor& x, const torch::Tensor& w, const std::vector<int64_t>& k,
                               int64_t factor) {
  const int64_t kc = w.size(2);
  SCORCH_CHECK(w.size(3) == kc && kc % 2 == 1, "upsample_conv_2d needs an odd square kernel, got {}x{}", kc, w.size(3));
  auto kk = setup_kernel(k, static_cast<double>(factor * factor));
  const int64_t p = (kk.size(0) - factor) - (kc - 1);
  // The transposed conv scatters x through the flipped kernel: out[f*i + a] += x[i] w[K-1-a],
  // i.e. a full correlation of the zero-upsampled input with w; the FIR pass then fills in.
  auto wt = w.flip({2, 3}).transpose(0, 1);  // [I, O, kh, kw]
  auto y = torch::conv_transpose2d(x, wt, {}, /*stride=*/factor);
  return upfirdn2d(y, kk, 1, 1, (p + 1) / 2 + factor - 1, p / 2 + 1);
}

torch::Tensor conv_downsample_2d(const torch::Tensor& x, const torch::Tensor& w, const std::vector<int64_t>& k,
                                 int64_t factor) {
  const int64_t kc = w.size(2);
  SCORCH_CHECK(w.size(3) == kc, "conv_downsample_2d needs a square kernel, got {}x{}", kc, w.size(3));
  auto kk = setup_kernel(k);
  const int64_t p = (kk.size(0) - factor) + (kc - 1);
  auto y = upfirdn2d(x, kk, 1, 1, (p + 1) / 2, p / 2);
  return torch::conv2d(y, w, {}, /*stride=*/factor);
}

torch::Tensor naive_upsample_2d(const torch::Tensor& x, int64_t factor) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return x.reshape({B, C, H, 1, W, 1}).expand({B, C, H, factor, W, factor}).reshape({B, C, H * factor, W * factor});
}

torch::Tensor naive_downsample_2d(const torch::Tensor& x, int64_t factor) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return x.reshape({B, C, H / factor, factor, W / factor, factor}).mean({3, 5});
}

}  // namespace scorch::models::fir
