// The communicator interface every distributed piece talks to: collectives on tensors,
// in place. MPI implements it on CPU; an NCCL implementation for GPU tensors slots in
// behind the same calls. Collectives must be called by every rank in the same order.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

namespace scorch::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;
  // Element-wise sum over ranks, in place. `t` contiguous; float32/float64/int64.
  virtual void allreduce_sum(torch::Tensor& t) = 0;
  // Copies `t` from `root` to every rank, in place (same shape and dtype everywhere).
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  // Concatenates every rank's `t` along dim 0 on `root` (other dims equal; row counts may
  // differ). Returns the result on root and an undefined tensor elsewhere.
  virtual torch::Tensor gather_rows(const torch::Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job: used when one rank fails, so that no other rank hangs.
  [[noreturn]] virtual void abort(int code) = 0;
};

// Initialises MPI once per process (MPI_Init / MPI_Finalize with the object's lifetime).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

// MPI_COMM_WORLD, or MPI_COMM_SELF (a world of one, e.g. for single-rank reference runs).
std::unique_ptr<Communicator> mpi_world();
std::unique_ptr<Communicator> mpi_self();

}  // namespace scorch::dist
