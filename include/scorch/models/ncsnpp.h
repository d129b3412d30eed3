// NCSN++ and DDPM++ (score_sde_pytorch's `ncsnpp` model): a U-Net of BigGAN or DDPM residual
// blocks with attention, FIR resampling and input/output pyramids, every option of the
// published configs. The network is one flat ModuleList `all_modules` in construction order.
#pragma once
#include "scorch/core/error.h"
#include "scorch/models/ncsnpp_layers.h"

namespace scorch::models {

// The reference's `sigmas` buffer: exp(linspace(log sigma_max, log sigma_min, N)), float64 [N].
torch::Tensor reference_sigmas(const ModelConfig& m);

class NCSNppImpl : public ScoreNet {
 public:
  explicit NCSNppImpl(const Config& cfg);
  // x [B,C,H,W] (in [0,1], or [-1,1] when data.centered); noise_level [B]: sigma(t) for
  // Fourier embeddings, 999 t (or the discrete index) for positional ones; class_labels as
  // ScoreNet says (the class embedding `class_embed` lives outside `all_modules`, so the
  // reference's module indices are unchanged). Returns [B,C,H,W].
  using ScoreNet::forward;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_level,
                        const torch::Tensor& class_labels) override;

 private:
  template <class T>
  T* at(size_t i) {
    auto* m = all_modules_[i]->as<T>();
    SCORCH_CHECK(m != nullptr, "ncsnpp: module {} is not a {}", i, all_modules_[i]->name());
    return m;
  }

  Config cfg_;
  ncsnpp::Act act_;
  torch::Tensor sigmas_;  // [num_scales] float64 (not a buffer: it follows the config)
  torch::nn::ModuleList all_modules_;
  ClassEmbedding class_embed_{nullptr};  // model.num_classes > 0
  std::vector<int64_t> all_resolutions_;
};

}  // namespace scorch::models
