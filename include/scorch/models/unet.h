// A small DDPM-style U-Net for images (28x28, 32x32, ...): residual blocks with GroupNorm,
// SiLU and the time embedding, self-attention at `model.attn_resolutions`, strided-conv
// down-sampling and nearest+conv up-sampling, skip connections between the two paths.
#pragma once
#include "scorch/models/model.h"

namespace scorch::models {

class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t temb_dim, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);  // [B,in,H,W] -> [B,out,H,W]

 private:
  torch::nn::GroupNorm norm0_{nullptr}, norm1_{nullptr};
  torch::nn::Conv2d conv0_{nullptr}, conv1_{nullptr}, skip_{nullptr};
  torch::nn::Linear dense_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(ResBlock);

class AttnBlockImpl : public torch::nn::Module {
 public:
  explicit AttnBlockImpl(int64_t ch);
  torch::Tensor forward(const torch::Tensor& x);  // [B,C,H,W] -> same

 private:
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d q_{nullptr}, k_{nullptr}, v_{nullptr}, out_{nullptr};
};
TORCH_MODULE(AttnBlock);

class UNetImpl : public ScoreNet {
 public:
  explicit UNetImpl(const Config& cfg);
  using ScoreNet::forward;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_level,
                        const torch::Tensor& class_labels) override;

 private:
  struct Level {
    std::vector<ResBlock> res;
    std::vector<AttnBlock> attn;  // empty, or one per res block
    torch::nn::Conv2d resample{nullptr};
  };
  bool scale_by_sigma_;
  TimeEmbedding temb_{nullptr};
  ClassEmbedding class_embed_{nullptr};  // model.num_classes > 0
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
  std::vector<Level> down_, up_;
  ResBlock mid0_{nullptr}, mid1_{nullptr};
  AttnBlock mid_attn_{nullptr};
};

// GroupNorm groups as in the reference: min(C / 4, 32).
int64_t num_groups(int64_t channels);

}  // namespace scorch::models
