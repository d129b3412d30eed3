// TorchScript and scorch-classifier feature networks (see eval/feature_net.h).
#include "scorch/eval/feature_net.h"

#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/hdf5.h"
#include "scorch/models/classifier.h"
#include "scorch/models/model.h"

namespace fs = std::filesystem;

namespace scorch::eval {

namespace {

class ScriptNet final : public FeatureNet {
 public:
  ScriptNet(const std::string& path, const torch::Device& device) : path_(path), id_(file_fnv1a64_hex(path)) {
    try {
      module_ = torch::jit::load(path, device);
    } catch (const std::exception& e) {
      SCORCH_THROW("{}: not a TorchScript module ({})", path, message_of(e).substr(0, 300));
    }
    module_.eval();
  }
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x01) override {
    torch::NoGradGuard ng;
    auto x = x01.size(1) == 1 ? x01.repeat({1, 3, 1, 1}) : x01;
    SCORCH_CHECK(x.size(1) == 3, "{}: TorchScript feature networks take RGB (1 or 3 channels), got {}", path_, x01.size(1));
    auto out = module_.forward({x});
    torch::Tensor f, l;
    if (out.isTensor()) {
      f = out.toTensor();
    } else if (out.isTuple() && !out.toTuple()->elements().empty()) {
      const auto& e = out.toTuple()->elements();
      f = e[0].toTensor();
      if (e.size() > 1) l = e[1].toTensor();
    } else {
      SCORCH_THROW("{}: forward must return a tensor [B,F] or a tuple (features, logits)", path_);
    }
    if (f.dim() == 4 && f.size(2) == 1 && f.size(3) == 1) f = f.flatten(1);  // pooled [B,F,1,1]
    SCORCH_CHECK(f.dim() == 2 && f.size(0) == x.size(0), "{}: features must be [B,F], got {}", path_,
                 c10::str(f.sizes()));
    return {f.to(torch::kFloat32), l.defined() ? l.to(torch::kFloat32) : l};
  }
  std::string describe() const override { return "TorchScript " + path_; }
  std::string id() const override { return id_; }

 private:
  std::string path_, id_;
  torch::jit::Module module_;
};

}  // namespace

models::Classifier load_classifier(const std::string& path, const torch::Device& device) {
  auto st = io::load_checkpoint(path);
  models::Classifier net(models::classifier_shape(st.params, path));
  torch::NoGradGuard ng;
  for (auto& p : net->named_parameters()) {
    auto it = st.params.find(p.key());
    SCORCH_CHECK(it != st.params.end() && it->second.sizes() == p.value().sizes(),
                 "{}: classifier parameter '{}' missing or of another shape", path, p.key());
    p.value().copy_(it->second);
  }
  net->to(device);
  net->eval();
  return net;
}

namespace {

class ClassifierNet final : public FeatureNet {
 public:
  ClassifierNet(const std::string& path, const torch::Device& device)
      : path_(path), id_(file_fnv1a64_hex(path)), net_(load_classifier(path, device)) {
    SCORCH_CHECK(!net_->shape().noise_conditional,
                 "{} is a noise-conditional classifier (for sampling.classifier); FID features need one trained "
                 "without --noise-conditional",
                 path);
  }
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x01) override {
    torch::NoGradGuard ng;
    return net_->forward(x01);
  }
  std::string describe() const override {
    const auto& s = net_->shape();
    return fmt::format("scorch classifier {} ({} features, {} classes)", path_, s.features, s.classes);
  }
  std::string id() const override { return id_; }

 private:
  std::string path_, id_;
  models::Classifier net_{nullptr};
};


}  // namespace

std::unique_ptr<FeatureNet> load_feature_net(const std::string& path, const torch::Device& device) {
  SCORCH_CHECK(!path.empty(), "no feature network: set eval.feature_net to a TorchScript file (.pt) or a classifier "
               "from `scorch train-classifier` (.h5)");
  SCORCH_CHECK(fs::is_regular_file(path), "eval.feature_net = \"{}\": no such file", path);
  if (h5::is_hdf5(path)) return std::make_unique<ClassifierNet>(path, device);
  return std::make_unique<ScriptNet>(path, device);
}

}  // namespace scorch::eval
