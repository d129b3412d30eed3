// Sharding arithmetic and the gradient all-reduce over one flat buffer (one collective
// per step; bucketing overlapped with backward is the NCCL path's job).
#include "scorch/dist/sharding.h"

#include "scorch/core/error.h"

namespace scorch::dist {

Range shard_range(int64_t n, int rank, int world) {
  SCORCH_CHECK(world > 0 && rank >= 0 && rank < world, "shard_range: bad rank {} of {}", rank, world);
  int64_t base = n / world, extra = n % world;
  int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

Range batch_share(int64_t global_batch, int rank, int world) {
  SCORCH_CHECK(global_batch % world == 0,
               "training.batch_size = {} is not divisible by the {} ranks of this job; choose a multiple of {}",
               global_batch, world, world);
  int64_t b = global_batch / world;
  return {rank * b, (rank + 1) * b};
}

void average_gradients(Communicator& comm, const std::vector<torch::Tensor>& params, torch::Tensor* extra) {
  std::vector<torch::Tensor> flat;
  flat.reserve(params.size() + 1);
  for (const auto& p : params) {
    flat.push_back(p.grad().defined() ? p.grad().reshape(-1) : torch::zeros({p.numel()}, p.options()));
  }
  if (extra) flat.push_back(extra->reshape(-1).to(torch::kFloat32));
  auto buf = torch::cat(flat);
  comm.allreduce_sum(buf);
  buf.div_(static_cast<double>(comm.size()));
  int64_t off = 0;
  for (const auto& p : params) {
    auto g = buf.slice(0, off, off + p.numel()).view_as(p);
    if (p.grad().defined()) {
      p.mutable_grad().copy_(g);
    } else {
      p.mutable_grad() = g.clone();
    }
    off += p.numel();
  }
  if (extra) *extra = buf.slice(0, off, off + extra->numel()).view_as(*extra).clone();
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

}  // namespace scorch::dist
