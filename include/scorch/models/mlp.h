// A residual MLP score network for point data [B,D]: width `model.nf`, `model.num_res_blocks`
// blocks, each conditioned on the time embedding.
#pragma once
#include "scorch/models/model.h"

namespace scorch::models {

class MLPImpl : public ScoreNet {
 public:
  explicit MLPImpl(const Config& cfg);
  using ScoreNet::forward;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_level,
                        const torch::Tensor& class_labels) override;  // [B,D] -> [B,D]

 private:
  bool scale_by_sigma_;
  TimeEmbedding temb_{nullptr};
  ClassEmbedding class_embed_{nullptr};  // model.num_classes > 0
  torch::nn::Linear in_{nullptr}, out_{nullptr};
  std::vector<torch::nn::Linear> fc0_, fc1_, dense_;
};

}  // namespace scorch::models
