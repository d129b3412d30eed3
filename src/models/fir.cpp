// FIR resampling. upfirdn2d is the definition (zero insertion, padding, one conv over the
// B*C planes); the layers use a separable, depthwise version of it (transposed conv for
// upsampling). The fused conv variants follow StyleGAN2's padding arithmetic.
#include "scorch/models/fir.h"

#include <map>

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

namespace {

// The taps of a 1-D kernel as a [1,1,K,1] or [1,1,1,K] tensor on x's device and dtype, made
// once per thread (no host-to-device copy per layer call).
torch::Tensor device_taps(const torch::Tensor& k1, bool flip, int64_t axis, const torch::TensorOptions& opt) {
  thread_local std::map<std::string, torch::Tensor> cache;
  const int64_t K = k1.size(0);
  std::string key = fmt::format("{}|{}|{}|{}|", flip, axis, opt.device().str(), static_cast<int>(opt.dtype().toScalarType()));
  for (int64_t i = 0; i < K; ++i) key += fmt::format("{:.17g},", k1[i].item<double>());
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::vector<int64_t> shape = axis == 2 ? std::vector<int64_t>{1, 1, K, 1} : std::vector<int64_t>{1, 1, 1, K};
  auto t = (flip ? k1.flip({0}) : k1).to(opt).reshape(shape);
  cache.emplace(key, t);
  return t;
}

// The same operation for a separable kernel outer(k1, k1), one axis at a time with depthwise
// convolutions; upsampling uses a strided transposed convolution instead of multiplying
// inserted zeros. `axis` 2 = H, 3 = W.
torch::Tensor upfirdn_axis(const torch::Tensor& x, const torch::Tensor& k1, int64_t up, int64_t down, int64_t pad0,
                           int64_t pad1, int64_t axis) {
  const int64_t C = x.size(1), n = x.size(axis), K = k1.size(0);
  std::vector<int64_t> wshape = axis == 2 ? std::vector<int64_t>{C, 1, K, 1} : std::vector<int64_t>{C, 1, 1, K};
  auto pads = [axis](int64_t a, int64_t b) {
    return axis == 2 ? std::vector<int64_t>{0, 0, a, b} : std::vector<int64_t>{a, b, 0, 0};
  };
  std::vector<int64_t> stride_up = axis == 2 ? std::vector<int64_t>{up, 1} : std::vector<int64_t>{1, up};
  std::vector<int64_t> stride_down = axis == 2 ? std::vector<int64_t>{down, 1} : std::vector<int64_t>{1, down};
  const int64_t out_len = (n * up + pad0 + pad1 - K) / down + 1;
  if (up > 1) {
    SCORCH_CHECK(down == 1, "upfirdn: up- and down-sampling at once is not supported on the fast path");
    // y[o] = sum_m x[m] k[o + K-1 - (up m + pad0)]: scatter x through k (unflipped), then shift.
    auto w = device_taps(k1, false, axis, x.options()).expand(wshape).contiguous();
    const std::vector<int64_t> no_pad{0, 0}, dil{1, 1};
    auto y = torch::conv_transpose2d(x, w, torch::Tensor(), stride_up, no_pad, no_pad, C, dil);
    const int64_t shift = K - 1 - pad0, len = y.size(axis);
    return torch::constant_pad_nd(y, pads(-shift, out_len + shift - len));
  }
  auto w = device_taps(k1, true, axis, x.options()).expand(wshape).contiguous();
  const std::vector<int64_t> no_pad{0, 0}, dil{1, 1};
  return torch::conv2d(torch::constant_pad_nd(x, pads(pad0, pad1)), w, torch::Tensor(), stride_down, no_pad, dil, C);
}

// 1-D kernel k / sum(k) * gain_1d: its outer product is setup_kernel(k, gain_1d^2).
torch::Tensor kernel_1d(const std::vector<int64_t>& k, double gain_1d) {
  std::vector<double> kd(k.begin(), k.end());
  auto t = torch::tensor(kd, torch::kFloat64);
  return t / t.sum() * gain_1d;
}

torch::Tensor upfirdn_separable(const torch::Tensor& x, const torch::Tensor& k1, int64_t up, int64_t down, int64_t pad0,
                                int64_t pad1) {
  return upfirdn_axis(upfirdn_axis(x, k1, up, down, pad0, pad1, 2), k1, up, down, pad0, pad1, 3);
}

}  // namespace

torch::Tensor upsample_2d(const torch::Tensor& x, const std::vector<int64_t>& k, int64_t factor) {
  const int64_t p = static_cast<int64_t>(k.size()) - factor;
  return upfirdn_separable(x, kernel_1d(k, static_cast<double>(factor)), factor, 1, (p + 1) / 2 + factor - 1, p / 2);
}

torch::Tensor downsample_2d(const torch::Tensor& x, const std::vector<int64_t>& k, int64_t factor) {
  const int64_t p = static_cast<int64_t>(k.size()) - factor;
  return upfirdn_separable(x, kernel_1d(k, 1.0), 1, factor, (p + 1) / 2, p / 2);
}

torch::Tensor upsample_conv_2d(const torch::Tensor& x, const torch::Tensor& w, const std::vector<int64_t>& k,
                               int64_t factor) {
  const int64_t kc = w.size(2);
  SCORCH_CHECK(w.size(3) == kc && kc % 2 == 1, "upsample_conv_2d needs an odd square kernel, got {}x{}", kc, w.size(3));
  const int64_t p = (static_cast<int64_t>(k.size()) - factor) - (kc - 1);
  // The transposed conv scatters x through the flipped kernel: out[f*i + a] += x[i] w[K-1-a],
  // i.e. a full correlation of the zero-upsampled input with w; the FIR pass then fills in.
  auto wt = w.flip({2, 3}).transpose(0, 1);  // [I, O, kh, kw]
  auto y = torch::conv_transpose2d(x, wt, {}, /*stride=*/factor);
  return upfirdn_separable(y, kernel_1d(k, static_cast<double>(factor)), 1, 1, (p + 1) / 2 + factor - 1, p / 2 + 1);
}

torch::Tensor conv_downsample_2d(const torch::Tensor& x, const torch::Tensor& w, const std::vector<int64_t>& k,
                                 int64_t factor) {
  const int64_t kc = w.size(2);
  SCORCH_CHECK(w.size(3) == kc, "conv_downsample_2d needs a square kernel, got {}x{}", kc, w.size(3));
  const int64_t p = (static_cast<int64_t>(k.size()) - factor) + (kc - 1);
  auto y = upfirdn_separable(x, kernel_1d(k, 1.0), 1, 1, (p + 1) / 2, p / 2);
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
