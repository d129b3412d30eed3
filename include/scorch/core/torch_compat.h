// Every difference between the LibTorch versions scorch builds against (Debian's 1.13 CPU
// build, a CUDA LibTorch 2.x from a PyTorch install) lives behind these few functions, so
// no other file tests TORCH_VERSION. What differs: the autocast setters (per-device-type
// functions since 2.4), and the autograd hook that fires once a leaf's gradient has been
// accumulated (a post hook on its AccumulateGrad node in both; 2.x adds methods this
// interface does not need).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace torch::autograd {
struct Node;
}

namespace scorch::compat {

// Enables autocast to `dtype` for `device`'s type in this thread while alive (forward
// passes only: backward runs outside it), and restores the previous state after.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, bool enabled, torch::ScalarType dtype = torch::kBFloat16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  torch::DeviceType type_;
  bool active_ = false;
  bool prev_enabled_ = false;
  torch::ScalarType prev_dtype_ = torch::kBFloat16;
};

// "1.13.0": the LibTorch this scorch was compiled against.
std::string torch_version();

// The cuDNN version LibTorch was built with ("9.1.0"), or "none".
std::string cudnn_version();
// Peak bytes allocated by LibTorch's CUDA caching allocator on `device` since start (0 on
// a CPU build or a CPU device).
int64_t cuda_peak_allocated(const torch::Device& device);

// TF32 tensor-core math for float32 matmuls and convolutions (Ampere and later GPUs).
void set_tf32(bool enabled);

// Calls `fn` each time autograd has accumulated a gradient into `param.grad()` (so the
// gradient is complete for this backward pass). Remove with the returned handle's reset.
class GradReadyHook {
 public:
  GradReadyHook(const torch::Tensor& param, std::function<void()> fn);
  ~GradReadyHook();
  GradReadyHook(const GradReadyHook&) = delete;
  GradReadyHook& operator=(const GradReadyHook&) = delete;

 private:
  std::shared_ptr<torch::autograd::Node> accumulator_;  // kept alive, as c10d's Reducer does
  uintptr_t key_ = 0;
};

}  // namespace scorch::compat
