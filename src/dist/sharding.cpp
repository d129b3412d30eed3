// Sharding arithmetic, the start-up broadcast and the replica checksum.
#include "scorch/dist/sharding.h"

#include <cstring>

#include "scorch/core/error.h"

namespace scorch::dist {

Range shard_range(int64_t n, int rank, int world) {
  SCORCH_CHECK(world > 0 && rank >= 0 && rank < world, "shard_range: bad rank {} of {}", rank, world);
  int64_t base = n / world, extra = n % world;
  int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

Range batch_share(int64_t global_batch, int rank, int world, int64_t micro_batches) {
  SCORCH_CHECK(micro_batches >= 1, "training.grad_accum must be >= 1 (got {})", micro_batches);
  const int64_t parts = world * micro_batches;
  if (micro_batches == 1) {
    SCORCH_CHECK(global_batch % world == 0,
                 "training.batch_size = {} is not divisible by the {} ranks of this job; choose a multiple of {} (e.g. "
                 "{}) or another number of ranks",
                 global_batch, world, world, (global_batch / world + 1) * world);
  } else {
    SCORCH_CHECK(global_batch % parts == 0,
                 "training.batch_size = {} does not split into {} ranks x training.grad_accum = {} equal micro-batches; "
                 "choose a multiple of {} (e.g. {})",
                 global_batch, world, micro_batches, parts, (global_batch / parts + 1) * parts);
  }
  int64_t b = global_batch / world;
  return {rank * b, (rank + 1) * b};
}

void broadcast_tensors(Communicator& comm, const std::vector<torch::Tensor>& tensors) {
  if (comm.size() == 1) return;
  torch::NoGradGuard ng;
  for (auto t : tensors) {
    auto c = t.contiguous();
    comm.broadcast(c, 0);
    if (c.data_ptr() != t.data_ptr()) t.copy_(c);
  }
}

std::string broadcast_string(Communicator& comm, const std::string& s, int root) {
  if (comm.size() == 1) return s;
  auto n = torch::tensor({static_cast<int64_t>(s.size())}, torch::kInt64);
  comm.broadcast(n, root);
  auto bytes = torch::zeros({n.item<int64_t>()}, torch::kUInt8);
  if (comm.rank() == root && !s.empty()) std::memcpy(bytes.data_ptr(), s.data(), s.size());
  if (bytes.numel() > 0) comm.broadcast(bytes, root);
  return std::string(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel()));
}

void on_root_or_throw(Communicator& comm, const std::function<void()>& work) {
  std::string error;
  if (comm.rank() == 0) {
    try {
      work();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  error = broadcast_string(comm, error, 0);
  if (!error.empty()) throw Error(error);
}

torch::Tensor bit_checksum(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard ng;
  // Each element's bits are split into 16-bit halves, weighted by position-dependent odd
  // factors below 2^15 and summed in int64: exact integer sums, so the result does not
  // depend on the summation order (threads, device) and any changed bit changes it.
  int64_t sum_lo = 0, sum_hi = 0;
  int64_t salt = 1;
  for (const auto& t0 : tensors) {
    if (t0.numel() == 0) continue;
    auto t = t0.detach().contiguous().flatten();
    torch::Tensor bits;
    switch (t.element_size()) {
      case 8: bits = t.view(torch::kInt64); break;
      case 4: bits = t.view(torch::kInt32).to(torch::kInt64); break;
      case 2: bits = t.view(torch::kInt16).to(torch::kInt64); break;
      default: bits = t.view(torch::kUInt8).to(torch::kInt64); break;
    }
    auto w = (torch::arange(t.numel(), bits.options()) * 2 + 2 * salt + 1).remainder(32749);
    const int64_t parts = t.element_size() == 8 ? 4 : 2;
    for (int64_t k = 0; k < parts; ++k) {
      auto half = torch::bitwise_and(torch::bitwise_right_shift(bits, 16 * k), 0xFFFF);
      auto s = (half * w).sum().item<int64_t>();
      if (k % 2 == 0) {
        sum_lo += s;
      } else {
        sum_hi += s;
      }
    }
    ++salt;
  }
  return torch::tensor({sum_lo, sum_hi}, torch::kInt64);
}

void check_replicas(Communicator& comm, const std::vector<std::pair<std::string, torch::Tensor>>& params, int64_t step) {
  std::vector<torch::Tensor> ts;
  ts.reserve(params.size());
  for (const auto& [name, p] : params) ts.push_back(p);
  auto mine = bit_checksum(ts);
  auto all = comm.all_gather(mine).cpu();  // [W, 2]
  std::vector<int> differ;
  for (int r = 1; r < comm.size(); ++r) {
    if (!torch::equal(all[r], all[0])) differ.push_back(r);
  }
  auto show = [&](int r) { return fmt::format("[{}, {}]", all[r][0].item<int64_t>(), all[r][1].item<int64_t>()); };
  SCORCH_CHECK(differ.empty(),
               "replica check at step {}: the parameters of rank(s) {} differ from rank 0's (bit checksums "
               "{} vs {}): the ranks no longer train the same model (a faulty node or a non-deterministic "
               "collective); stopping rather than training on",
               step, fmt::join(differ, ", "), show(differ.front()), show(0));
}

}  // namespace scorch::dist
