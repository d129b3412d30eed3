// The small CNN classifier (see models/classifier.h).
#include "scorch/models/classifier.h"

#include "scorch/core/error.h"
#include "scorch/models/model.h"

namespace scorch::models {

namespace {
torch::nn::Conv2dOptions conv3(int64_t in, int64_t out) { return torch::nn::Conv2dOptions(in, out, 3).padding(1); }
}  // namespace

ClassifierImpl::ClassifierImpl(const ClassifierShape& s) : shape_(s) {
  c0_ = register_module("clf_c0", torch::nn::Conv2d(conv3(s.channels, s.nf)));
  c1_ = register_module("clf_c1", torch::nn::Conv2d(conv3(s.nf, s.nf)));
  c2_ = register_module("clf_c2", torch::nn::Conv2d(conv3(s.nf, 2 * s.nf)));
  c3_ = register_module("clf_c3", torch::nn::Conv2d(conv3(2 * s.nf, 4 * s.nf)));
  fc_ = register_module("clf_fc", torch::nn::Linear(4 * s.nf, s.features));
  head_ = register_module("clf_head", torch::nn::Linear(s.features, s.classes));
  if (s.noise_conditional) {
    temb0_ = register_module("clf_temb0", torch::nn::Linear(s.nf, s.nf));
    temb1_ = register_module("clf_temb1", torch::nn::Linear(s.nf, 2 * s.nf));
  }
}

std::pair<torch::Tensor, torch::Tensor> ClassifierImpl::forward(const torch::Tensor& x01, const torch::Tensor& t) {
  SCORCH_CHECK(x01.dim() == 4 && x01.size(1) == shape_.channels, "classifier: input must be [B,{},H,W], got {}",
               shape_.channels, c10::str(x01.sizes()));
  SCORCH_CHECK(t.defined() == shape_.noise_conditional, "classifier: {}", shape_.noise_conditional
                   ? "this noise-conditional classifier needs the diffusion time t"
                   : "this classifier is not noise-conditional (train one with --noise-conditional)");
  torch::Tensor emb;
  if (t.defined()) emb = torch::silu(positional_embedding(t * 999.0, shape_.nf).to(x01.scalar_type()));
  auto h = c0_(t.defined() ? x01 : x01 * 2 - 1);
  if (t.defined()) h = h + temb0_(emb).unsqueeze(-1).unsqueeze(-1);
  h = torch::relu(h);
  h = torch::max_pool2d(torch::relu(c1_(h)), 2);
  h = c2_(h);
  if (t.defined()) h = h + temb1_(emb).unsqueeze(-1).unsqueeze(-1);
  h = torch::max_pool2d(torch::relu(h), 2);
  h = torch::relu(c3_(h)).mean({2, 3});
  auto f = torch::relu(fc_(h));
  return {f, head_(f)};
}

ClassifierShape classifier_shape(const std::map<std::string, torch::Tensor>& p, const std::string& what) {
  auto get = [&](const std::string& k) {
    auto it = p.find(k);
    SCORCH_CHECK(it != p.end(), "{} is not a scorch classifier (no parameter '{}'): train one with `scorch "
                 "train-classifier`", what, k);
    return it->second;
  };
  ClassifierShape s;
  auto w0 = get("clf_c0.weight"), wf = get("clf_fc.weight"), wh = get("clf_head.weight");
  s.nf = w0.size(0);
  s.channels = w0.size(1);
  s.features = wf.size(0);
  s.classes = wh.size(0);
  s.noise_conditional = p.count("clf_temb0.weight") > 0;
  return s;
}

}  // namespace scorch::models
