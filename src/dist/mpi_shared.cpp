// The farm's shared counter and node-shared memory over MPI (dist/communicator.h's
// SharedCounter and NodeShared), each on a communicator of its own.
#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

#include "mpi_detail.h"
#include "scorch/core/error.h"

namespace scorch::dist::mpi_detail {

namespace {

// Two counters behind SharedCounter, each on a communicator of its own (so that its creation
// and traffic never interleave with the owner's collectives):
//  - within one node, a window of one int64 on rank 0 (MPI_Fetch_and_op; Open MPI's osc/sm
//    serves it in shared memory);
//  - across nodes, a service thread on rank 0 that answers fetch-and-add messages. Open MPI
//    4.1 has no one-sided component for TCP between nodes with MPI_THREAD_MULTIPLE (osc/rdma
//    needs RDMA hardware, osc/pt2pt refuses THREAD_MULTIPLE, osc/ucx only what UCX is set up
//    for): MPI_Win_allocate fails there. The service polls a posted receive with short
//    pauses, so it takes no core from rank 0's compute.
class MpiServedCounter final : public SharedCounter {
 public:
  MpiServedCounter(MPI_Comm comm, int64_t initial, Watchdog* watchdog)
      : comm_(comm), watchdog_(watchdog), value_(initial) {
    MPI_Comm_rank(comm_, &rank_);
    if (rank_ == 0) service_ = std::thread([this] { serve(); });
    check(MPI_Barrier(comm_), "Barrier");
  }
  ~MpiServedCounter() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Barrier(comm_);  // collective: every rank's last request has been answered
    if (service_.joinable()) {
      quit_ = true;
      service_.join();
    }
    MPI_Comm_free(&comm_);
  }
  int64_t fetch_add(int64_t v) override {
    if (rank_ == 0) return value_.fetch_add(v);
    std::optional<Watchdog::Scope> watch;
    if (watchdog_) watch.emplace(*watchdog_, "the farm counter's fetch-and-add on rank 0 (a message to its service)");
    int64_t before = 0;
    check(MPI_Send(&v, 1, MPI_INT64_T, 0, kAdd, comm_), "Send");
    check(MPI_Recv(&before, 1, MPI_INT64_T, 0, kReply, comm_, MPI_STATUS_IGNORE), "Recv");
    return before;
  }

 private:
  static constexpr int kAdd = 1, kReply = 2;
  void serve() {
    int64_t v = 0;
    MPI_Request req;
    MPI_Irecv(&v, 1, MPI_INT64_T, MPI_ANY_SOURCE, kAdd, comm_, &req);
    for (int idle = 0;;) {
      int done = 0;
      MPI_Status st;
      MPI_Test(&req, &done, &st);
      if (done) {
        int64_t before = value_.fetch_add(v);
        MPI_Send(&before, 1, MPI_INT64_T, st.MPI_SOURCE, kReply, comm_);
        MPI_Irecv(&v, 1, MPI_INT64_T, MPI_ANY_SOURCE, kAdd, comm_, &req);
        idle = 0;
        continue;
      }
      if (quit_) break;
      // Pauses growing from 10 us to 1 ms while no request comes.
      std::this_thread::sleep_for(std::chrono::microseconds(std::min(1000, 10 << std::min(idle++, 7))));
    }
    MPI_Cancel(&req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
  }

  MPI_Comm comm_;
  Watchdog* watchdog_;
  std::atomic<int64_t> value_;
  std::atomic<bool> quit_{false};
  int rank_ = 0;
  std::thread service_;
};

class MpiCounter final : public SharedCounter {
 public:
  MpiCounter(MPI_Comm comm, int64_t initial, Watchdog* watchdog) : comm_(comm), watchdog_(watchdog) {
    int rank = 0;
    MPI_Comm_rank(comm_, &rank);
    int64_t* base = nullptr;
    check(MPI_Win_allocate(rank == 0 ? sizeof(int64_t) : 0, sizeof(int64_t), MPI_INFO_NULL, comm_, &base, &win_),
          "Win_allocate");
    if (rank == 0) {
      check(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win_), "Win_lock");
      *base = initial;
      check(MPI_Win_unlock(0, win_), "Win_unlock");
    }
    check(MPI_Barrier(comm_), "Barrier");
  }
  ~MpiCounter() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Win_free(&win_);
    MPI_Comm_free(&comm_);
  }
  int64_t fetch_add(int64_t v) override {
    int64_t before = 0;
    std::optional<Watchdog::Scope> watch;
    if (watchdog_) watch.emplace(*watchdog_, "the farm counter's fetch-and-add on rank 0");
    check(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win_), "Win_lock");
    check(MPI_Fetch_and_op(&v, &before, MPI_INT64_T, 0, 0, MPI_SUM, win_), "Fetch_and_op");
    check(MPI_Win_unlock(0, win_), "Win_unlock");
    return before;
  }

 private:
  MPI_Comm comm_;
  Watchdog* watchdog_;
  MPI_Win win_ = MPI_WIN_NULL;
};

// The node's block: a shared window on a communicator of the node's ranks (its own, so
// that its barriers never interleave with the owner's collectives).
class MpiNodeShared final : public NodeShared {
 public:
  MpiNodeShared(MPI_Comm node, int64_t bytes) : comm_(node), bytes_(bytes) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    const MPI_Aint mine = rank_ == 0 ? static_cast<MPI_Aint>(std::max<int64_t>(bytes, 1)) : 0;
    void* base = nullptr;
    // Contiguous across ranks is not needed: only rank 0 holds bytes.
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    const int rc = MPI_Win_allocate_shared(mine, 1, info, comm_, &base, &win_);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
      MPI_Comm_free(&comm_);
      check(rc, "Win_allocate_shared");
    }
    MPI_Aint size = 0;
    int disp = 1;
    check(MPI_Win_shared_query(win_, 0, &size, &disp, &data_), "Win_shared_query");
    SCORCH_CHECK(static_cast<int64_t>(size) >= bytes, "MPI shared window: asked for {} bytes, node rank 0 holds {}",
                 bytes, static_cast<int64_t>(size));
    check(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "Win_lock_all");
  }
  ~MpiNodeShared() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Win_unlock_all(win_);
    MPI_Win_free(&win_);
    MPI_Comm_free(&comm_);
  }
  void* data() override { return data_; }
  int64_t bytes() const override { return bytes_; }
  int64_t allocated_here() const override { return rank_ == 0 ? bytes_ : 0; }
  int node_rank() const override { return rank_; }
  int node_size() const override { return size_; }
  void node_barrier() override {
    check(MPI_Win_sync(win_), "Win_sync");
    check(MPI_Barrier(comm_), "Barrier");
    check(MPI_Win_sync(win_), "Win_sync");
  }

 private:
  MPI_Comm comm_;
  int64_t bytes_;
  int rank_ = 0, size_ = 1;
  MPI_Win win_ = MPI_WIN_NULL;
  void* data_ = nullptr;
};

}  // namespace

std::unique_ptr<SharedCounter> make_counter(MPI_Comm comm, int64_t initial, Watchdog* watchdog, bool served) {
  if (served) return std::make_unique<MpiServedCounter>(comm, initial, watchdog);
  return std::make_unique<MpiCounter>(comm, initial, watchdog);
}

std::unique_ptr<NodeShared> make_node_shared(MPI_Comm node, int64_t bytes) {
  return std::make_unique<MpiNodeShared>(node, bytes);
}

}  // namespace scorch::dist::mpi_detail
