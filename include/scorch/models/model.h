// Score networks: a module mapping (x [B,...], label [B]) to an output of x's shape, which
// the SDE turns into a score. Variants: a small U-Net for images, an MLP for point data;
// `make_model` builds one from `model.name`. Time embeddings are shared here.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "scorch/core/config.h"

namespace scorch::models {

class ScoreNet : public torch::nn::Module {
 public:
  // x [B,C,H,W] or [B,D]; labels [B] (999 t or sigma(t)). Returns x's shape.
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& labels) = 0;
};
using ScoreNetPtr = std::shared_ptr<ScoreNet>;

// Builds the network named by `model.name`; unknown names list the valid ones.
ScoreNetPtr make_model(const Config& cfg);

// Every parameter, trainable or not (the fixed Fourier W counts, as in the reference).
int64_t count_parameters(const torch::nn::Module& m);

// Sinusoidal embedding of labels [B] -> [B, dim] (DDPM; max_positions 10000).
torch::Tensor positional_embedding(const torch::Tensor& labels, int64_t dim, double max_positions = 10000.0);

// xavier-uniform weights scaled by `scale` (0: zero), zero bias: the reference's default_init.
void default_init(torch::Tensor& weight, torch::Tensor& bias, double scale = 1.0);

// Time embedding: positional(label) or Fourier features of log(label), then Linear-SiLU-Linear.
class TimeEmbeddingImpl : public torch::nn::Module {
 public:
  TimeEmbeddingImpl(const Config& cfg, int64_t out_dim);
  torch::Tensor forward(const torch::Tensor& labels);  // [B] -> [B, out_dim]

 private:
  bool fourier_ = false;
  int64_t nf_ = 0;
  torch::Tensor fourier_W_;  // [nf/2], fixed (not trained)
  torch::nn::Linear dense0_{nullptr}, dense1_{nullptr};
};
TORCH_MODULE(TimeEmbedding);

}  // namespace scorch::models
