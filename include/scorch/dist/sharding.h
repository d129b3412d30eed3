// How work is split over ranks, and the checks that keep replicas identical. Everything
// that must not depend on the world size (noise, data order, sample seeds) is a function
// of global indices; ranks only pick their part.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
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

// Rows of a global batch owned by `rank`: batch / world each. Throws, naming the sizes,
// unless the batch divides into `world` ranks x `micro_batches` equal micro-batches.
Range batch_share(int64_t global_batch, int rank, int world, int64_t micro_batches = 1);

// Copies rank 0's values of `tensors` to every rank (start from identical parameters).
void broadcast_tensors(Communicator& comm, const std::vector<torch::Tensor>& tensors);
// `s` of rank `root` on every rank. Collective.
std::string broadcast_string(Communicator& comm, const std::string& s, int root);
// Runs `work` on rank 0 only (taking a lock, renaming files) and makes its failure every
// rank's: each throws scorch::Error with rank 0's message, unchanged. Collective.
void on_root_or_throw(Communicator& comm, const std::function<void()>& work);

// An exact, order-independent checksum of the bits of `tensors` (float32/bf16/float64/
// integer): int64 [2] on the CPU. Equal tensors give equal checksums on any device type.
torch::Tensor bit_checksum(const std::vector<torch::Tensor>& tensors);

// Collective: compares the checksum of `params` on every rank with rank 0's. On mismatch
// every rank throws the same error, naming `step` and the ranks that differ.
void check_replicas(Communicator& comm, const std::vector<std::pair<std::string, torch::Tensor>>& params, int64_t step);

}  // namespace scorch::dist
