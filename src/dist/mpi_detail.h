// Private to the MPI communicator (dist/mpi_communicator.cpp, dist/mpi_shared.cpp,
// dist/mpi_support.cpp): the dtype mapping, error checks, the largest count one MPI call
// takes, the watchdog that ends a job whose collective waits too long, and the farm
// counters and node-shared windows the communicator hands out.
#pragma once
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "scorch/dist/communicator.h"

namespace scorch::dist::mpi_detail {

MPI_Datatype mpi_type(torch::ScalarType t);
// Throws naming `what` and MPI's message unless rc is MPI_SUCCESS.
void check(int rc, const char* what);
// MPI counts are ints: large buffers go in pieces of at most 2^30 elements.
constexpr int64_t kMaxCount = int64_t(1) << 30;

// Watches the one blocking MPI operation a communicator (or its counter) is in: Scope marks
// it, a thread checks every 0.5 s (or a tenth of the timeout) and, past the timeout, reports
// and ends the job. Operations of one communicator run one at a time (its thread), but a
// counter's fetch_add runs on the caller's thread, so each in-flight operation has a slot.
class Watchdog {
 public:
  Watchdog(int rank, std::string peers) : rank_(rank), peers_(std::move(peers)) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void set_timeout(double seconds) {
    std::lock_guard<std::mutex> lk(mu_);
    timeout_s_ = seconds;
    if (seconds > 0 && !thread_.joinable()) thread_ = std::thread([this] { watch(); });
    cv_.notify_all();
  }
  void set_activity(const std::string& what) {
    std::lock_guard<std::mutex> lk(mu_);
    activity_ = what;
  }

  // Marks one blocking operation for its lifetime.
  class Scope {
   public:
    Scope(Watchdog& w, std::string what) : w_(w) {
      std::lock_guard<std::mutex> lk(w_.mu_);
      id_ = ++w_.next_id_;
      w_.busy_[id_] = {std::chrono::steady_clock::now(), std::move(what), w_.activity_};
    }
    ~Scope() {
      std::lock_guard<std::mutex> lk(w_.mu_);
      w_.busy_.erase(id_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Watchdog& w_;
    uint64_t id_ = 0;
  };

 private:
  struct Busy {
    std::chrono::steady_clock::time_point since;
    std::string what, activity;
  };

  void watch();

  int rank_;
  std::string peers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  bool quit_ = false;
  double timeout_s_ = 0;
  std::string activity_;
  uint64_t next_id_ = 0;
  std::map<uint64_t, Busy> busy_;
};

// "node1 (ranks 0-1), node2 (ranks 2-3)": which ranks run where, from every rank's host
// name (gathered once, collectively).
std::string hosts_of_ranks(MPI_Comm comm);

// The farm's shared counter on its own communicator `comm` (taken over: freed with the
// counter): a service thread on rank 0 answering messages (`served`, across nodes) or a
// one-sided window (one node). Collective over `comm`.
std::unique_ptr<SharedCounter> make_counter(MPI_Comm comm, int64_t initial, Watchdog* watchdog, bool served);
// `bytes` held once per node in a shared window over `node`, the node's ranks (taken over).
std::unique_ptr<NodeShared> make_node_shared(MPI_Comm node, int64_t bytes);

}  // namespace scorch::dist::mpi_detail
