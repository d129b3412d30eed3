// Layers of NCSN++ / DDPM++, with the reference's parameter names (GroupNorm_0, Conv_0,
// Dense_0, NIN_0.W, Conv2d_0.weight, ...) so reference checkpoints map one to one.
// All take and return NCHW tensors; `temb` is [B, 4 nf] or undefined (unconditional).
#pragma once
#include <functional>

#include "scorch/models/model.h"

namespace scorch::models::ncsnpp {

using Act = std::function<torch::Tensor(const torch::Tensor&)>;
Act make_act(const std::string& name);  // swish | relu | lrelu (0.2) | elu

// The reference's default_init: fan-avg uniform variance scaling; scale 0 means 1e-10.
double init_scale_or_tiny(double scale);
torch::nn::Conv2d conv3x3(int64_t in, int64_t out, double init_scale = 1.0, int64_t stride = 1, int64_t padding = 1);
torch::nn::Conv2d conv1x1(int64_t in, int64_t out, double init_scale = 1.0);
torch::nn::GroupNorm group_norm(int64_t channels);  // min(C/4, 32) groups, eps 1e-6
torch::nn::Linear dense(int64_t in, int64_t out);

// Fixed Gaussian Fourier features: x [B] -> [sin(2 pi x W), cos(2 pi x W)] [B, 2 size].
class GaussianFourierProjectionImpl : public torch::nn::Module {
 public:
  GaussianFourierProjectionImpl(int64_t size, double scale);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor W;
};
TORCH_MODULE(GaussianFourierProjection);

// 1x1 "network in network" layer: W [C_in, C_out] (the transpose of a Linear), b [C_out].
class NINImpl : public torch::nn::Module {
 public:
  NINImpl(int64_t in, int64_t out, double init_scale = 0.1);
  torch::Tensor forward(const torch::Tensor& x);  // [B,C_in,H,W] -> [B,C_out,H,W]
  torch::Tensor W, b;
};
TORCH_MODULE(NIN);

// Input-pyramid combiner: Conv (1x1, dim1 -> dim2) of x, then sum with or concat to y.
class CombineImpl : public torch::nn::Module {
 public:
  CombineImpl(int64_t dim1, int64_t dim2, std::string method);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y);

 private:
  torch::nn::Conv2d conv_{nullptr};
  std::string method_;
};
TORCH_MODULE(Combine);

// Single-head self-attention over all H*W positions, residual (rescaled if skip_rescale).
class AttnBlockppImpl : public torch::nn::Module {
 public:
  AttnBlockppImpl(int64_t channels, bool skip_rescale, double init_scale);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::GroupNorm norm_{nullptr};
  NIN nin_[4] = {nullptr, nullptr, nullptr, nullptr};
  bool skip_rescale_;
};
TORCH_MODULE(AttnBlockpp);

// Conv2d whose up/down-sampling is fused with a FIR filter (weight [O,I,3,3], bias [O]).
class FirConv2dImpl : public torch::nn::Module {
 public:
  FirConv2dImpl(int64_t in, int64_t out, int64_t kernel, bool up, bool down, std::vector<int64_t> fir_kernel);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;

 private:
  bool up_, down_;
  std::vector<int64_t> k_;
};
TORCH_MODULE(FirConv2d);

struct ResampleOptions {
  int64_t in_ch = 0, out_ch = 0;  // out_ch 0: in_ch
  bool with_conv = false, fir = false;
  std::vector<int64_t> fir_kernel{1, 3, 3, 1};
};

// x2 up-sampling: nearest (+3x3 conv) or FIR (fused FIR conv). Parameterless without conv.
class UpsampleImpl : public torch::nn::Module {
 public:
  explicit UpsampleImpl(const ResampleOptions& o);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  ResampleOptions o_;
  torch::nn::Conv2d conv_{nullptr};
  FirConv2d fir_conv_{nullptr};
};
TORCH_MODULE(Upsample);

// /2 down-sampling: pad + strided 3x3 conv or 2x2 average, or FIR (fused FIR conv).
class DownsampleImpl : public torch::nn::Module {
 public:
  explicit DownsampleImpl(const ResampleOptions& o);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  ResampleOptions o_;
  torch::nn::Conv2d conv_{nullptr};
  FirConv2d fir_conv_{nullptr};
};
TORCH_MODULE(Downsample);

struct ResBlockOptions {
  bool biggan = true;  // BigGAN block (may resample; 1x1 Conv_2 shortcut) or DDPM block (NIN_0 shortcut)
  int64_t in_ch = 0, out_ch = 0;  // out_ch 0: in_ch
  int64_t temb_dim = 0;
  bool up = false, down = false;
  double dropout = 0.1;
  bool fir = false;
  std::vector<int64_t> fir_kernel{1, 3, 3, 1};
  bool skip_rescale = true;
  double init_scale = 0.0;
};

// GroupNorm-act-(resample)-conv, + Dense(act(temb)), GroupNorm-act-dropout-conv, + shortcut.
class ResnetBlockppImpl : public torch::nn::Module {
 public:
  ResnetBlockppImpl(const ResBlockOptions& o, Act act);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);

 private:
  ResBlockOptions o_;
  Act act_;
  torch::nn::GroupNorm norm0_{nullptr}, norm1_{nullptr};
  torch::nn::Conv2d conv0_{nullptr}, conv1_{nullptr}, conv2_{nullptr};
  torch::nn::Linear dense0_{nullptr};
  torch::nn::Dropout drop_{nullptr};
  NIN nin_{nullptr};
};
TORCH_MODULE(ResnetBlockpp);

}  // namespace scorch::models::ncsnpp
