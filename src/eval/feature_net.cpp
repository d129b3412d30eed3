// TorchScript and scorch-classifier feature networks (see eval/feature_net.h).
#include "scorch/eval/feature_net.h"

#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/torch_compat.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/hdf5.h"
#include "scorch/models/classifier.h"
#include "scorch/models/model.h"

namespace fs = std::filesystem;

namespace scorch::eval {

namespace {

// A TorchScript module, its interface read from the schema of its `forward` (never from the
// file name):
//  - an argument `return_features`: NVIDIA's translation of TF's inception-2015-12-05
//    (StyleGAN2-ADA's metrics/frechet_inception_distance.py loads it): uint8-valued NCHW RGB
//    in [0, 255] at any size (it resizes to 299 itself), `return_features=True` -> [B,2048];
//    for IS, `return_features=False` (and `no_output_bias=True` where the module has it, as
//    StyleGAN2-ADA's metrics/inception_score.py) gives softmax probabilities [B,1008], whose
//    logarithms serve as logits;
//  - returning a list of tensors: pytorch-fid's InceptionV3 (pytorch_fid/inception.py),
//    float [0, 1], its last block, pool3 [B,2048,1,1], are the features;
//  - anything else: float [0, 1] -> [B,F] (or [B,F,1,1]) or a tuple (features, logits).
class ScriptNet final : public FeatureNet {
 public:
  ScriptNet(const std::string& path, const torch::Device& device) : path_(path), id_(file_fnv1a64_hex(path)) {
    try {
      module_ = torch::jit::load(path, device);
    } catch (const std::exception& e) {
      const std::string what = message_of(e);
      // A module scripted by a newer PyTorch may call operators an older LibTorch lacks
      // (PyTorch 2.x's F.interpolate scripts aten::_upsample_lanczos2d_aa, unknown to 1.13).
      const bool newer = what.find("Unknown builtin op") != std::string::npos ||
                         what.find("Unknown type name") != std::string::npos ||
                         what.find("version") != std::string::npos;
      SCORCH_THROW("{}: not a TorchScript module this scorch (LibTorch {}) can load ({}){}", path,
                   compat::torch_version(), what.substr(0, 300),
                   newer ? fmt::format("; a module saved by a newer PyTorch than {} may use operators it lacks: save it "
                                       "with PyTorch {}, or build scorch against the newer PyTorch (bash jobs/setup.sh "
                                       "--torch-prefix PYTHON)",
                                       compat::torch_version(), compat::torch_version())
                         : std::string());
    }
    module_.eval();
    SCORCH_CHECK(module_.find_method("forward").has_value(), "{}: the TorchScript module has no forward method", path);
    const auto& schema = module_.get_method("forward").function().getSchema();
    for (const auto& a : schema.arguments()) {
      if (a.name() == "return_features") interface_ = Interface::kNvidiaInception;
      if (a.name() == "no_output_bias") has_no_output_bias_ = true;
    }
    if (interface_ == Interface::kPlain && schema.returns().size() == 1 &&
        schema.returns()[0].type()->kind() == c10::TypeKind::ListType) {
      interface_ = Interface::kPytorchFid;
    }
  }
  // Any failure inside the module (a Python `raise` in TorchScript, an output of the wrong
  // type) is reported naming the file.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x01) override {
    try {
      return forward_checked(x01);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      SCORCH_THROW("{}: the feature network failed on a batch of {} images {}: {}", path_, x01.size(0),
                   c10::str(x01.sizes()), message_of(e));
    }
  }

 private:
  std::pair<torch::Tensor, torch::Tensor> forward_checked(const torch::Tensor& x01) {
    torch::NoGradGuard ng;
    auto x = x01.size(1) == 1 ? x01.repeat({1, 3, 1, 1}) : x01;
    SCORCH_CHECK(x.size(1) == 3, "{}: TorchScript feature networks take RGB (1 or 3 channels), got {}", path_, x01.size(1));
    torch::Tensor f, l;
    if (interface_ == Interface::kNvidiaInception) {
      // The bytes the images are stored as (data::unit_to_images' quantisation).
      const auto u8 = (x * 255.0).round().clamp(0, 255).to(torch::kUInt8);
      f = tensor_of(module_.forward({u8}, {{"return_features", true}}), "forward(img, return_features=True)");
      torch::jit::Kwargs kw{{"return_features", false}};
      if (has_no_output_bias_) kw["no_output_bias"] = true;
      const auto p = tensor_of(module_.forward({u8}, kw), "forward(img, return_features=False)");
      SCORCH_CHECK(p.dim() == 2 && p.size(0) == x.size(0), "{}: class probabilities must be [B,K], got {}", path_,
                   c10::str(p.sizes()));
      l = p.to(torch::kFloat32).clamp_min(1e-30).log();
    } else {
      auto out = module_.forward({x});
      if (out.isTensor()) {
        f = out.toTensor();
      } else if (out.isTensorList() && !out.toTensorList().empty()) {
        f = out.toTensorList().get(out.toTensorList().size() - 1);  // pytorch-fid: the last block asked for
      } else if (out.isTuple() && !out.toTuple()->elements().empty()) {
        const auto& e = out.toTuple()->elements();
        for (size_t i = 0; i < std::min<size_t>(e.size(), 2); ++i) {
          SCORCH_CHECK(e[i].isTensor(), "{}: forward returned a tuple whose element {} is a {}, not a tensor (expected "
                       "(features [B,F], logits [B,K]))", path_, i, e[i].tagKind());
        }
        f = e[0].toTensor();
        if (e.size() > 1) l = e[1].toTensor();
      } else {
        SCORCH_THROW("{}: forward must return a tensor [B,F], a list of tensors (pytorch-fid) or a tuple (features, "
                     "logits)", path_);
      }
    }
    if (f.dim() == 4 && f.size(2) == 1 && f.size(3) == 1) f = f.flatten(1);  // pooled [B,F,1,1]
    SCORCH_CHECK(f.dim() == 2 && f.size(0) == x.size(0), "{}: features must be [B,F], got {}", path_,
                 c10::str(f.sizes()));
    return {f.to(torch::kFloat32), l.defined() ? l.to(torch::kFloat32) : l};
  }

 public:
  std::string describe() const override {
    switch (interface_) {
      case Interface::kNvidiaInception:
        return "NVIDIA TF-Inception TorchScript " + path_;
      case Interface::kPytorchFid:
        return "pytorch-fid InceptionV3 TorchScript " + path_;
      case Interface::kPlain:
        break;
    }
    return "TorchScript " + path_;
  }
  std::string interface() const override {
    switch (interface_) {
      case Interface::kNvidiaInception:
        return "nvidia-tf-inception (uint8 NCHW RGB [0,255], forward(img, return_features=True))";
      case Interface::kPytorchFid:
        return "pytorch-fid (float NCHW RGB [0,1], pool3 of a list output)";
      case Interface::kPlain:
        break;
    }
    return "torchscript (float NCHW RGB [0,1] -> [B,F] or (features, logits))";
  }
  std::string id() const override { return id_; }

 private:
  enum class Interface { kPlain, kNvidiaInception, kPytorchFid };
  torch::Tensor tensor_of(const c10::IValue& v, const char* call) const {
    SCORCH_CHECK(v.isTensor(), "{}: {} must return a tensor", path_, call);
    return v.toTensor();
  }
  std::string path_, id_;
  torch::jit::Module module_;
  Interface interface_ = Interface::kPlain;
  bool has_no_output_bias_ = false;
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
  std::string interface() const override { return "scorch-classifier (float NCHW [0,1], the images' own channels)"; }
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
