// Residual MLP: h <- h + fc1(silu(fc0(silu(h)) + dense(temb))).
#include "scorch/models/mlp.h"

namespace scorch::models {

MLPImpl::MLPImpl(const Config& cfg) : scale_by_sigma_(cfg.model.scale_by_sigma) {
  const int64_t nf = cfg.model.nf, D = cfg.data.dim;
  temb_ = register_module("temb", TimeEmbedding(cfg, nf));
  in_ = register_module("in", torch::nn::Linear(D, nf));
  default_init(in_->weight, in_->bias);
  for (int64_t k = 0; k < cfg.model.num_res_blocks; ++k) {
    fc0_.push_back(register_module(fmt::format("block{}_fc0", k), torch::nn::Linear(nf, nf)));
    dense_.push_back(register_module(fmt::format("block{}_dense", k), torch::nn::Linear(nf, nf)));
    fc1_.push_back(register_module(fmt::format("block{}_fc1", k), torch::nn::Linear(nf, nf)));
    default_init(fc0_.back()->weight, fc0_.back()->bias);
    default_init(dense_.back()->weight, dense_.back()->bias);
    default_init(fc1_.back()->weight, fc1_.back()->bias);
  }
  out_ = register_module("out", torch::nn::Linear(nf, D));
  default_init(out_->weight, out_->bias, /*scale=*/0.0);
  if (cfg.model.num_classes > 0) class_embed_ = register_module("class_embed", ClassEmbedding(cfg.model.num_classes, nf));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x, const torch::Tensor& noise_level,
                               const torch::Tensor& class_labels) {
  auto temb = torch::silu(add_class_embedding(class_embed_, temb_(noise_level), class_labels));
  auto h = in_(x);
  for (size_t k = 0; k < fc0_.size(); ++k) {
    h = h + fc1_[k](torch::silu(fc0_[k](torch::silu(h)) + dense_[k](temb)));
  }
  auto out = out_(torch::silu(h));
  if (scale_by_sigma_) out = out / noise_level.unsqueeze(1);
  return out;
}

}  // namespace scorch::models
