// A small image classifier (not a score network): the feature extractor scorch trains
// itself for FID, IS and KID on data sets Inception was not made for (Fashion-MNIST).
//   [B,C,H,W] in [0,1] -> conv3x3(nf) ReLU conv3x3(nf) ReLU maxpool2 -> conv3x3(2nf) ReLU
//   maxpool2 -> conv3x3(4nf) ReLU -> global average pool -> linear(features) ReLU = the
//   features [B,features] -> linear(num_classes) = the logits [B,num_classes].
// Any image size works (global pooling). Parameter names start with "clf." so that a
// classifier checkpoint is told apart from a score network's.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>

namespace scorch::models {

struct ClassifierShape {
  int64_t channels = 1, nf = 32, features = 128, classes = 10;
  // Noise-conditional (classifier guidance, p(c | x_t, t)): a positional embedding of 999 t
  // through Linear-SiLU ("clf_temb0") is added after the first convolution and, through
  // "clf_temb1", after the third. The input is then x_t in the score model's data space.
  bool noise_conditional = false;
};

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ClassifierShape& s);
  // (features [B,F], logits [B,K]) of x [B,C,H,W] in [0,1]; a noise-conditional classifier
  // takes x_t and its times t [B] as well.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& t = torch::Tensor());
  const ClassifierShape& shape() const { return shape_; }

 private:
  ClassifierShape shape_;
  torch::nn::Conv2d c0_{nullptr}, c1_{nullptr}, c2_{nullptr}, c3_{nullptr};
  torch::nn::Linear fc_{nullptr}, head_{nullptr}, temb0_{nullptr}, temb1_{nullptr};
};
TORCH_MODULE(Classifier);

// The shape of a classifier from its parameters (a checkpoint's), or throws naming `what`
// if they are not a classifier's.
ClassifierShape classifier_shape(const std::map<std::string, torch::Tensor>& params, const std::string& what);

}  // namespace scorch::models
