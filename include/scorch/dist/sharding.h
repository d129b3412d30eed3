// How work is split over ranks. Everything that must not depend on the world size (noise,
// data order, sample seeds) is a function of global indices; ranks only pick their part.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "scorch/dist/communicator.h"

namespace scorch::dist {

struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// Contiguous, balanced split of [0, n): the first n % world ranks get one extra item.
Range shard_range(int64_t n, int rank, int world);

// Rows of a global batch owned by `rank`: batch / world each; throws unless divisible.
Range batch_share(int64_t global_batch, int rank, int world);

// Averages the gradients of `params` over ranks with one all-reduce of a flat buffer.
// `extra` (e.g. the loss, [k] float32) rides along and is averaged too.
void average_gradients(Communicator& comm, const std::vector<torch::Tensor>& params, torch::Tensor* extra = nullptr);

// Copies rank 0's values of `tensors` to every rank (start from identical parameters).
void broadcast_tensors(Communicator& comm, const std::vector<torch::Tensor>& tensors);

}  // namespace scorch::dist
