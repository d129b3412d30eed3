// Batch and per-item Gaussian noise for the samplers (see sampling/noise.h).
#include "scorch/sampling/noise.h"

#include <ATen/Parallel.h>

#include <optional>

#include "scorch/core/error.h"
#include "scorch/core/random.h"

namespace scorch::sampling {

struct Noise::State {
  std::optional<at::Generator> batch;
  uint64_t key = 0;
  std::vector<int64_t> index;
  std::vector<at::Generator> item_gens;  // CUDA: one per item
  torch::Device device{torch::kCPU};
  uint32_t draws = 0;  // per-item: the lane of the next draw
};

Noise::Noise(at::Generator gen) : s_(std::make_shared<State>()) {
  s_->device = gen.device();
  s_->batch = std::move(gen);
}

Noise Noise::per_item(uint64_t key, std::vector<int64_t> index, const torch::Device& device) {
  auto s = std::make_shared<State>();
  s->key = key;
  s->index = std::move(index);
  s->device = device;
  if (!device.is_cpu()) {
    for (auto i : s->index) {
      s->item_gens.push_back(make_generator(device, derive_seed(key, Stream::kSampleItem, {static_cast<uint64_t>(i)})));
    }
  }
  return Noise(std::move(s));
}

torch::Device Noise::device() const { return s_->device; }

torch::Tensor Noise::randn(at::IntArrayRef shape) const {
  auto& s = *s_;
  const auto opt = torch::TensorOptions().dtype(torch::kFloat32).device(s.device);
  if (s.batch) return torch::randn(shape, *s.batch, opt);
  const int64_t B = static_cast<int64_t>(s.index.size());
  SCORCH_CHECK(!shape.empty() && shape[0] == B, "per-item noise for {} items asked for shape {}", B, c10::str(shape));
  const uint32_t lane = s.draws++;
  if (!s.item_gens.empty()) {
    std::vector<int64_t> one(shape.begin(), shape.end());
    one[0] = 1;
    std::vector<torch::Tensor> rows;
    rows.reserve(static_cast<size_t>(B));
    for (auto& g : s.item_gens) rows.push_back(torch::randn(one, g, opt));
    return torch::cat(rows);
  }
  auto out = torch::empty(shape, opt);
  const int64_t D = B == 0 ? 0 : out.numel() / B;
  float* p = out.data_ptr<float>();
  const uint64_t key = s.key;
  const auto& index = s.index;
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t r = b0; r < b1; ++r) {
      CounterRng(derive_seed(key, Stream::kSampleItem, {static_cast<uint64_t>(index[static_cast<size_t>(r)])}), 0)
          .normal(p + r * D, D, lane);
    }
  });
  return out;
}

}  // namespace scorch::sampling
