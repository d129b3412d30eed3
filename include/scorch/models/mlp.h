// A residual MLP score network for point data [B,D]: width `model.nf`, `model.num_res_blocks`
// blocks, each conditioned on the time embedding.
#pragma once
#include "scorch/models/model.h"

namespace scorch::models {

class MLPImpl : public ScoreNet {
 public:
  explicit MLPImpl(const Config& cfg);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& labels) override;  // [B,D] -> [B,D]

 private:
  bool scale_by_sigma_;
  TimeEmbedding temb_{nullptr};
  torch::nn::Linear in_{nullptr}, out_{nullptr};
  std::vector<torch::nn::Linear> fc0_, fc1_, dense_;
};

}  // namespace scorch::models
