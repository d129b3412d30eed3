// The discrete-time losses of score_sde (losses.py: get_smld_loss_fn, get_ddpm_loss_fn): SMLD for VE (noise levels indexed in
// descending sigma, target -noise/sigma^2, weight sigma^2) and DDPM for VP (epsilon
// prediction with alphas_cumprod). The network is called with the integer level as label.
#pragma once
#include <torch/torch.h>

#include "scorch/models/score_fn.h"
#include "scorch/sde/variants.h"

namespace scorch::losses {

// net(x, labels): labels float [B] holding integer levels. Returns x's shape.
using OutputFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& labels)>;

// Per-item losses [B]. x0 [B,...]; labels int64 [B] in [0, N); z [B,...] ~ N(0, I).
torch::Tensor smld_loss_per_item(const OutputFn& net, const sde::VESDE& sde, const torch::Tensor& x0,
                                 const torch::Tensor& labels, const torch::Tensor& z, bool reduce_mean);
torch::Tensor ddpm_loss_per_item(const OutputFn& net, const sde::VPSDE& sde, const torch::Tensor& x0,
                                 const torch::Tensor& labels, const torch::Tensor& z, bool reduce_mean);

}  // namespace scorch::losses
