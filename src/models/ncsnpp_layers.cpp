// NCSN++ / DDPM++ layers. Parameters are registered in the reference's order, which is the
// order of its parameters() and therefore of its EMA shadow list and optimizer state.
#include "scorch/models/ncsnpp_layers.h"

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/models/fir.h"

namespace scorch::models::ncsnpp {

namespace {
const double kSqrt2 = std::sqrt(2.0);
}

Act make_act(const std::string& name) {
  if (name == "swish") return [](const torch::Tensor& x) { return torch::silu(x); };
  if (name == "relu") return [](const torch::Tensor& x) { return torch::relu(x); };
  if (name == "lrelu") return [](const torch::Tensor& x) { return torch::leaky_relu(x, 0.2); };
  if (name == "elu") return [](const torch::Tensor& x) { return torch::elu(x); };
  SCORCH_THROW("model.nonlinearity '{}' not known: valid are swish, relu, lrelu, elu", name);
}

double init_scale_or_tiny(double scale) { return scale == 0.0 ? 1e-10 : scale; }

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, double init_scale, int64_t stride, int64_t padding) {
  auto c = torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(padding));
  default_init(c->weight, c->bias, init_scale_or_tiny(init_scale));
  return c;
}

torch::nn::Conv2d conv1x1(int64_t in, int64_t out, double init_scale) {
  auto c = torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1));
  default_init(c->weight, c->bias, init_scale_or_tiny(init_scale));
  return c;
}

torch::nn::GroupNorm group_norm(int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(std::min<int64_t>(channels / 4, 32), channels).eps(1e-6));
}

torch::nn::Linear dense(int64_t in, int64_t out) {
  auto l = torch::nn::Linear(in, out);
  default_init(l->weight, l->bias, 1.0);
  return l;
}

GaussianFourierProjectionImpl::GaussianFourierProjectionImpl(int64_t size, double scale) {
  W = register_parameter("W", torch::randn({size}) * scale, /*requires_grad=*/false);
}

torch::Tensor GaussianFourierProjectionImpl::forward(const torch::Tensor& x) {
  auto proj = x.unsqueeze(1) * W.unsqueeze(0) * 2.0 * M_PI;
  return torch::cat({proj.sin(), proj.cos()}, -1);
}

NINImpl::NINImpl(int64_t in, int64_t out, double init_scale) {
  W = register_parameter("W", torch::empty({in, out}));
  b = register_parameter("b", torch::zeros({out}));
  torch::Tensor none;
  default_init(W, none, init_scale_or_tiny(init_scale));
}

torch::Tensor NINImpl::forward(const torch::Tensor& x) {
  // y[b,o,h,w] = sum_c x[b,c,h,w] W[c,o] + b[o]: a 1x1 convolution with weight W^T.
  return torch::conv2d(x, W.t().unsqueeze(-1).unsqueeze(-1), b);
}

CombineImpl::CombineImpl(int64_t dim1, int64_t dim2, std::string method) : method_(std::move(method)) {
  conv_ = register_module("Conv", conv1x1(dim1, dim2));
}

torch::Tensor CombineImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  auto h = conv_(x);
  if (method_ == "cat") return torch::cat({h, y}, 1);
  if (method_ == "sum") return h + y;
  SCORCH_THROW("model.progressive_combine '{}' not known: valid are sum, cat", method_);
}

AttnBlockppImpl::AttnBlockppImpl(int64_t channels, bool skip_rescale, double init_scale) : skip_rescale_(skip_rescale) {
  norm_ = register_module("GroupNorm_0", group_norm(channels));
  for (int i = 0; i < 4; ++i)
    nin_[i] = register_module("NIN_" + std::to_string(i), NIN(channels, channels, i == 3 ? init_scale : 0.1));
}

torch::Tensor AttnBlockppImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
  auto h = apply_norm(*norm_, x);
  auto q = nin_[0](h).reshape({B, C, H * Wd});
  auto k = nin_[1](h).reshape({B, C, H * Wd});
  auto v = nin_[2](h).reshape({B, C, H * Wd});
  auto w = torch::bmm(q.transpose(1, 2), k) * std::pow(static_cast<double>(C), -0.5);  // [B, HW(query), HW(key)]
  w = torch::softmax(w, -1);
  auto o = torch::bmm(v, w.transpose(1, 2)).reshape({B, C, H, Wd});
  o = nin_[3](o);
  return skip_rescale_ ? (x + o) / kSqrt2 : x + o;
}

FirConv2dImpl::FirConv2dImpl(int64_t in, int64_t out, int64_t kernel, bool up, bool down,
                             std::vector<int64_t> fir_kernel)
    : up_(up), down_(down), k_(std::move(fir_kernel)) {
  SCORCH_CHECK(!(up && down), "FirConv2d cannot both up- and down-sample");
  SCORCH_CHECK(kernel >= 1 && kernel % 2 == 1, "FirConv2d kernel must be odd, got {}", kernel);
  weight = register_parameter("weight", torch::empty({out, in, kernel, kernel}));
  bias = register_parameter("bias", torch::zeros({out}));
  default_init(weight, bias, 1.0);
}

torch::Tensor FirConv2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (up_) {
    y = fir::upsample_conv_2d(x, weight, k_);
  } else if (down_) {
    y = fir::conv_downsample_2d(x, weight, k_);
  } else {
    y = torch::conv2d(x, weight, {}, 1, weight.size(2) / 2);
  }
  return y + bias.reshape({1, -1, 1, 1});
}

UpsampleImpl::UpsampleImpl(const ResampleOptions& o) : o_(o) {
  if (o_.out_ch == 0) o_.out_ch = o_.in_ch;
  if (o_.with_conv && !o_.fir) conv_ = register_module("Conv_0", conv3x3(o_.in_ch, o_.out_ch));
  if (o_.with_conv && o_.fir)
    fir_conv_ = register_module("Conv2d_0", FirConv2d(o_.in_ch, o_.out_ch, 3, true, false, o_.fir_kernel));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  if (!o_.fir) {
    auto h = fir::naive_upsample_2d(x, 2);  // = F.interpolate(x, 2H, 'nearest')
    return o_.with_conv ? conv_(h) : h;
  }
  return o_.with_conv ? fir_conv_(x) : fir::upsample_2d(x, o_.fir_kernel, 2);
}

DownsampleImpl::DownsampleImpl(const ResampleOptions& o) : o_(o) {
  if (o_.out_ch == 0) o_.out_ch = o_.in_ch;
  if (o_.with_conv && !o_.fir) conv_ = register_module("Conv_0", conv3x3(o_.in_ch, o_.out_ch, 1.0, 2, 0));
  if (o_.with_conv && o_.fir)
    fir_conv_ = register_module("Conv2d_0", FirConv2d(o_.in_ch, o_.out_ch, 3, false, true, o_.fir_kernel));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) {
  if (!o_.fir) {
    auto h = torch::constant_pad_nd(x, {0, 1, 0, 1});
    return o_.with_conv ? conv_(h) : torch::avg_pool2d(h, 2, 2);
  }
  return o_.with_conv ? fir_conv_(x) : fir::downsample_2d(x, o_.fir_kernel, 2);
}

ResnetBlockppImpl::ResnetBlockppImpl(const ResBlockOptions& o, Act act) : o_(o), act_(std::move(act)) {
  if (o_.out_ch == 0) o_.out_ch = o_.in_ch;
  SCORCH_CHECK(o_.biggan || (!o_.up && !o_.down), "DDPM residual blocks do not resample");
  norm0_ = register_module("GroupNorm_0", group_norm(o_.in_ch));
  conv0_ = register_module("Conv_0", conv3x3(o_.in_ch, o_.out_ch));
  if (o_.temb_dim > 0) dense0_ = register_module("Dense_0", dense(o_.temb_dim, o_.out_ch));
  norm1_ = register_module("GroupNorm_1", group_norm(o_.out_ch));
  drop_ = register_module("Dropout_0", torch::nn::Dropout(o_.dropout));
  conv1_ = register_module("Conv_1", conv3x3(o_.out_ch, o_.out_ch, o_.init_scale));
  if (o_.biggan) {
    if (o_.in_ch != o_.out_ch || o_.up || o_.down) conv2_ = register_module("Conv_2", conv1x1(o_.in_ch, o_.out_ch));
  } else if (o_.in_ch != o_.out_ch) {
    nin_ = register_module("NIN_0", NIN(o_.in_ch, o_.out_ch));
  }
}

torch::Tensor ResnetBlockppImpl::forward(const torch::Tensor& x_in, const torch::Tensor& temb) {
  auto x = x_in;
  auto h = act_(apply_norm(*norm0_, x));
  if (o_.up) {
    h = o_.fir ? fir::upsample_2d(h, o_.fir_kernel) : fir::naive_upsample_2d(h);
    x = o_.fir ? fir::upsample_2d(x, o_.fir_kernel) : fir::naive_upsample_2d(x);
  } else if (o_.down) {
    h = o_.fir ? fir::downsample_2d(h, o_.fir_kernel) : fir::naive_downsample_2d(h);
    x = o_.fir ? fir::downsample_2d(x, o_.fir_kernel) : fir::naive_downsample_2d(x);
  }
  h = conv0_(h);
  if (temb.defined()) h = h + dense0_(act_(temb)).unsqueeze(-1).unsqueeze(-1);
  h = conv1_(drop_(act_(apply_norm(*norm1_, h))));
  if (conv2_) x = conv2_(x);
  if (nin_) x = nin_(x);
  return o_.skip_rescale ? (x + h) / kSqrt2 : x + h;
}

}  // namespace scorch::models::ncsnpp
