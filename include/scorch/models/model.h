// Score networks: a module mapping (x [B,...], noise level [B], class labels [B]) to an output of x's shape, which
// the SDE turns into a score. Variants: NCSN++/DDPM++ (ncsnpp.h, score_sde_pytorch's
// models/ncsnpp.py), a small U-Net for images (unet.h) and an MLP for point data (mlp.h);
// `make_model` builds one from `model.name` (analytic_gmm is an exact score, not a network:
// analytic_gmm.h). Time embeddings and weight loading are shared here.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "scorch/core/config.h"

namespace scorch::models {

class ScoreNet : public torch::nn::Module {
 public:
  // x [B,C,H,W] or [B,D]; noise_level [B]: what the SDE conditions the network on (999 t or
  // sigma(t); the level index in discrete time). class_labels int64 [B] in [0, num_classes],
  // num_classes being the null label, or undefined: the null label for a class-conditional
  // network (model.num_classes > 0), nothing for an unconditional one. Returns x's shape.
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_level,
                                const torch::Tensor& class_labels) = 0;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_level) {
    return forward(x, noise_level, torch::Tensor());
  }
};
using ScoreNetPtr = std::shared_ptr<ScoreNet>;

// Builds the network named by `model.name`; unknown names list the valid ones.
ScoreNetPtr make_model(const Config& cfg);

// Every parameter, trainable or not (the fixed Fourier W counts, as in the reference).
int64_t count_parameters(const torch::nn::Module& m);

// Puts every 4-d parameter of `m` (convolution weights) in channels-last (NHWC) memory.
void to_channels_last(torch::nn::Module& m);

// FLOPs of one forward pass per item (core/flops.h: convolutions and matrix products, 2 per
// multiply-add), counted on a batch of `batch` items of the job's shape on `device` without
// gradients. A training step costs about 3x this per image (backward: 2x forward).
int64_t forward_flops_per_item(ScoreNet& net, const Config& cfg, const torch::Device& device, int64_t batch = 1);

// Tensors by module path ("down0_res0.conv0.weight"), as checkpoints store them.
using TensorMap = std::map<std::string, torch::Tensor>;
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;
NamedTensors named(const torch::OrderedDict<std::string, torch::Tensor>& d);

// Copies `src` into `dst` by name (any device: copy_ moves the data). Every name and shape
// is checked before the first tensor is written; `what` names the kind in errors
// ("parameter", "buffer", "EMA tensor").
void copy_named(const TensorMap& src, const NamedTensors& dst, const std::string& what);

// Loads weights into `model`: its parameters from `params`, its buffers from `buffers`.
void load_weights(ScoreNet& model, const TensorMap& params, const TensorMap& buffers);

// GroupNorm in its parameters' precision (float32): under bf16 autocast the input arrives in
// bf16, and LibTorch 1.13's CPU autocast, unlike CUDA's, does not cast group_norm itself.
torch::Tensor apply_norm(torch::nn::GroupNormImpl& norm, const torch::Tensor& x);

// Sinusoidal embedding of noise levels [B] -> [B, dim] (DDPM; max_positions 10000).
torch::Tensor positional_embedding(const torch::Tensor& levels, int64_t dim, double max_positions = 10000.0);

// xavier-uniform weights scaled by `scale` (0: zero), zero bias: the reference's default_init.
void default_init(torch::Tensor& weight, torch::Tensor& bias, double scale = 1.0);

// Time embedding: positional(level) or Fourier features of log(level), then Linear-SiLU-Linear.
class TimeEmbeddingImpl : public torch::nn::Module {
 public:
  TimeEmbeddingImpl(const Config& cfg, int64_t out_dim);
  torch::Tensor forward(const torch::Tensor& noise_level);  // [B] -> [B, out_dim]

 private:
  bool fourier_ = false;
  int64_t nf_ = 0;
  torch::Tensor fourier_W_;  // [nf/2], fixed (not trained)
  torch::nn::Linear dense0_{nullptr}, dense1_{nullptr};
};
TORCH_MODULE(TimeEmbedding);

// The learned class embedding of a class-conditional network (model.num_classes = K > 0),
// added to the time embedding as in guided diffusion (Dhariwal & Nichol 2021) and
// classifier-free guidance (Ho & Salimans 2022): Embedding(K + 1, dim), row K the null label.
class ClassEmbeddingImpl : public torch::nn::Module {
 public:
  ClassEmbeddingImpl(int64_t num_classes, int64_t dim);
  // labels int64 [B] in [0, K] or undefined (all null) -> [B, dim] on `like`'s device.
  torch::Tensor forward(const torch::Tensor& labels, const torch::Tensor& like);

 private:
  int64_t num_classes_;
  torch::nn::Embedding table_{nullptr};
};
TORCH_MODULE(ClassEmbedding);

// Adds the class embedding to `temb` [B, dim] when the network is class-conditional (`ce`
// non-null); refuses labels given to an unconditional network.
torch::Tensor add_class_embedding(ClassEmbedding ce, const torch::Tensor& temb, const torch::Tensor& labels);

}  // namespace scorch::models
