// Where a sampler's Gaussian noise comes from. Two sources behind one handle:
//  - batch: one torch generator for the whole batch (draws depend on the batch's shape);
//  - per item: item r of the batch is global sample index[r], and every draw it makes comes
//    from its own stream keyed by (key, index[r]) and the number of draws before it, never
//    from the other items. A sample is then the same whatever batch, rank or restart draws
//    it (up to the float reductions of a network over another batch size), which is what
//    the sampler farm needs (farm/farm.h). CPU: Philox counter streams (core/random.h,
//    64-bit keys, no seed truncation); CUDA: one Philox generator per item.
// A Noise is a handle like at::Generator: copies share their state.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace scorch::sampling {

class Noise {
 public:
  // One generator for the whole batch (implicit: samplers accept a generator directly).
  Noise(at::Generator gen);  // NOLINT(google-explicit-constructor)
  // Item r draws from stream (key, index[r]) on `device`.
  static Noise per_item(uint64_t key, std::vector<int64_t> index, const torch::Device& device);

  // Standard normal float32 of `shape` [B,...] on the noise's device; with per-item noise B
  // must equal the number of items.
  torch::Tensor randn(at::IntArrayRef shape) const;
  torch::Device device() const;

 private:
  struct State;
  explicit Noise(std::shared_ptr<State> s) : s_(std::move(s)) {}
  std::shared_ptr<State> s_;
};

}  // namespace scorch::sampling
