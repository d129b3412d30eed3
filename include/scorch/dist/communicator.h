// The communicator interface every distributed piece talks to: collectives on tensors, in
// place, called by every rank in the same order. Two backends: MPI (CPU tensors; CUDA
// tensors are staged through host memory, which is what tests with several ranks on one
// GPU use) and NCCL (CUDA tensors, one GPU per rank; `nccl_communicator.h`). MPI is also
// the control plane of every job: stop flags, barriers, small metadata.
//
// Asynchronous form: iallreduce_sum returns a Work handle, like c10d's ProcessGroup. For
// MPI a communication thread per communicator runs the collectives in submission order
// (needs MPI_THREAD_MULTIPLE; without it they run on the caller's thread at submission);
// for NCCL they are enqueued on the communicator's own CUDA stream, ordered after the
// caller's current stream with events.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace scorch::dist {

class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective is complete and its result may be used by the caller
  // (CPU: the tensor holds it; CUDA: later work on the caller's current stream sees it).
  // Rethrows an error of the collective.
  virtual void wait() = 0;
};
using WorkPtr = std::shared_ptr<Work>;

// An int64 held by rank 0 that any rank can fetch-and-add on its own, while the others
// compute (MPI one-sided: MPI_Fetch_and_op on a window, passive target). The sampler farm
// deals out batches with it. Created and destroyed collectively.
class SharedCounter {
 public:
  virtual ~SharedCounter() = default;
  // Adds `v` atomically and returns the value before the addition.
  virtual int64_t fetch_add(int64_t v) = 0;
};

// One block of memory shared by the ranks of a node (MPI-3: MPI_Comm_split_type with
// MPI_COMM_TYPE_SHARED, then MPI_Win_allocate_shared with the whole size on the node's
// first rank and 0 bytes elsewhere): one copy per node, mapped into every rank of it.
// Created and destroyed collectively.
class NodeShared {
 public:
  virtual ~NodeShared() = default;
  // The node-wide block: the same bytes in every rank of the node.
  virtual void* data() = 0;
  virtual int64_t bytes() const = 0;
  // Bytes this rank allocated (the whole block on the node's first rank, 0 elsewhere).
  virtual int64_t allocated_here() const = 0;
  virtual int node_rank() const = 0;
  virtual int node_size() const = 0;
  // Barrier over the node's ranks, with a memory fence: what one rank wrote before it is
  // seen by all after it.
  virtual void node_barrier() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks of its node, and their number.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual std::string name() const = 0;
  // Where the collectives compute: the CPU for MPI, the communicator's GPU for NCCL.
  virtual torch::Device device() const = 0;

  // Element-wise sum over ranks, in place, asynchronously. `t` contiguous; float32,
  // float64, int64 or int32 (NCCL also bfloat16). Do not touch `t` before wait().
  virtual WorkPtr iallreduce_sum(const torch::Tensor& t) = 0;
  // Copies `t` from `root` to every rank, in place (same shape and dtype everywhere).
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  // Every rank's `t` (same shape and dtype everywhere) stacked: [size, ...t.shape].
  virtual torch::Tensor all_gather(const torch::Tensor& t) = 0;
  // Concatenates every rank's `t` along dim 0 on `root` (other dims equal; row counts may
  // differ). Returns the result (on the CPU) on root and an undefined tensor elsewhere.
  virtual torch::Tensor gather_rows(const torch::Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job: used when one rank fails, so that no other rank hangs.
  [[noreturn]] virtual void abort(int code) = 0;
  // A SharedCounter starting at `initial` (collective; over the control plane for NCCL).
  virtual std::unique_ptr<SharedCounter> make_counter(int64_t initial) = 0;
  // A block of `bytes` shared by this node's ranks (collective over the whole job).
  virtual std::unique_ptr<NodeShared> make_node_shared(int64_t bytes) = 0;

  // The watchdog (MPI; NCCL has its own, dist.timeout_s): a collective, barrier or counter
  // operation of this communicator not complete after `seconds` (0: never) means a peer
  // died, hangs or cannot be reached; this rank then prints what it waited for, the
  // activity, how long, and the hosts of the other ranks, and ends the job (MPI_Abort, then
  // _exit should the abort itself not return, e.g. when the link to mpirun is gone). Set it
  // longer than any rank may compute while another waits (a farm batch, a checkpoint).
  virtual void set_timeout(double /*seconds*/) {}
  // What the job is doing, for the watchdog's message: "training step 120".
  virtual void set_activity(const std::string& /*what*/) {}

  // Synchronous sum: iallreduce_sum(t) then wait().
  void allreduce_sum(const torch::Tensor& t) { iallreduce_sum(t)->wait(); }
};

// Initialises MPI once per process (MPI_Init_thread asking for MPI_THREAD_MULTIPLE, and
// MPI_Finalize with the object's lifetime). Before MPI_Init it applies
// single_node_network_defaults().
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

// Where the launcher placed every rank on one node (mpirun's OMPI_COMM_WORLD_LOCAL_SIZE equal
// to OMPI_COMM_WORLD_SIZE, a Slurm step of one node, or no launcher at all), keeps this
// process off the network: Open MPI's byte transfer layers become self and shared memory
// (OMPI_MCA_btl=self,vader: no TCP listener on every interface), a launcher-less process
// starts no helper daemon (OMPI_MCA_ess_singleton_isolated=1), and NCCL's bootstrap and
// socket transport use loopback (NCCL_SOCKET_IFNAME=lo). A variable the user or the launcher
// already set (mpirun --mca btl ... sets OMPI_MCA_btl) is left as it is. Multi-node runs are
// untouched: they choose interfaces with OMPI_MCA_btl_tcp_if_include / oob_tcp_if_include and
// NCCL_SOCKET_IFNAME (README, "Network listeners"). Returns the variables it set ("NAME=value").
std::vector<std::string> single_node_network_defaults();
// What the MpiSession's call of single_node_network_defaults() set (empty before one).
const std::vector<std::string>& network_defaults_applied();

// Whether MPI collectives can run on a communication thread (MPI_THREAD_MULTIPLE).
bool mpi_thread_multiple();

// A duplicate of MPI_COMM_WORLD, or of MPI_COMM_SELF (a world of one, e.g. for
// single-rank reference runs): each communicator has its own MPI context and thread.
std::unique_ptr<Communicator> mpi_world();
std::unique_ptr<Communicator> mpi_self();

// Benchmark baseline: seconds per MPI_Allreduce(MPI_IN_PLACE, sum) of the CPU tensor `buf`
// on MPI_COMM_WORLD, called `iters` times in a plain loop on this thread after `warmup`
// untimed calls (no communicator, queue or thread in between). Collective.
double time_plain_mpi_allreduce(torch::Tensor buf, int iters, int warmup);

}  // namespace scorch::dist
