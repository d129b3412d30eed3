// Feature networks for FID, IS and KID. Two kinds behind one interface:
//  - a TorchScript module (`eval.feature_net = "x.pt"`, grayscale repeated to 3 channels),
//    of one of three interfaces recognised from its forward's schema: NVIDIA's TF-Inception
//    (`forward(img, return_features)`, uint8-valued [B,3,H,W] in [0,255]), pytorch-fid's
//    InceptionV3 (float [0,1], a list whose last tensor is pool3 [B,2048,1,1]), or any
//    float [0,1] -> [B,F] features or a tuple (features, logits);
//  - a classifier trained by `scorch train-classifier` (`.h5`): features from its
//    penultimate layer, logits from its last (models/classifier.h), on the images' own
//    channels.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>

#include "scorch/models/classifier.h"

namespace scorch::eval {

class FeatureNet {
 public:
  virtual ~FeatureNet() = default;
  // (features [B,F] float32, logits [B,K] float32 or undefined) of x [B,C,H,W] in [0,1].
  virtual std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x01) = 0;
  // "torchscript x.pt" / "scorch classifier y.h5 (128 features, 10 classes)".
  virtual std::string describe() const = 0;
  // The input convention it was recognised by, for provenance records.
  virtual std::string interface() const = 0;
  // Names cached features: a hash of the file's bytes (16 hex digits).
  virtual std::string id() const = 0;
};

// The network at `path` on `device` (TorchScript unless the file is HDF5). Throws naming
// the file if it is missing or of neither kind.
std::unique_ptr<FeatureNet> load_feature_net(const std::string& path, const torch::Device& device);

// A classifier checkpoint written by `scorch train-classifier` (plain or noise-conditional),
// in eval mode on `device`. Throws naming the file and the parameter that does not fit.
models::Classifier load_classifier(const std::string& path, const torch::Device& device);

}  // namespace scorch::eval
