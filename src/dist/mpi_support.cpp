// What the MPI communicator's pieces share (dist/mpi_detail.h): the dtype mapping, error
// checks, the watchdog's thread, and the host names of the ranks.
#include <cstdlib>
#include <iostream>

#include "mpi_detail.h"
#include "scorch/core/error.h"
#include "scorch/core/host.h"

namespace scorch::dist::mpi_detail {

MPI_Datatype mpi_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kUInt8: return MPI_UINT8_T;
    default: SCORCH_THROW("MPI: unsupported dtype {}", c10::toString(t));
  }
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    SCORCH_THROW("MPI {} failed: {}", what, std::string(msg, static_cast<size_t>(len)));
  }
}

void Watchdog::watch() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!quit_) {
    const double period = std::clamp(timeout_s_ / 10, 0.05, 0.5);
    cv_.wait_for(lk, std::chrono::duration<double>(period));
    if (quit_ || timeout_s_ <= 0) continue;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [id, b] : busy_) {
      const double waited = std::chrono::duration<double>(now - b.since).count();
      if (waited <= timeout_s_) continue;
      const std::string msg = fmt::format(
          "scorch: error: [rank {} on {}] MPI watchdog: {} ({}) has not completed after {:.1f} s (dist.timeout_s = "
          "{}): a peer rank died, hangs or cannot be reached over the network (MPI cannot tell which; the job's "
          "ranks run on {}); aborting the job\n",
          rank_, host_name(), b.what, b.activity.empty() ? "outside training steps" : b.activity, waited,
          timeout_s_, peers_);
      std::cerr << msg << std::flush;
      // MPI_Abort asks the launcher to end every rank; should that not return (the
      // launcher is behind the same broken link), end this rank at least.
      std::thread([] {
        std::this_thread::sleep_for(std::chrono::seconds(10));
        std::_Exit(1);
      }).detach();
      lk.unlock();
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::_Exit(1);
    }
  }
}

// "node1 (ranks 0-1), node2 (ranks 2-3)": which ranks run where, from every rank's host
// name (gathered once, collectively).
std::string hosts_of_ranks(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  constexpr int kLen = 64;
  std::string mine = host_name();
  mine.resize(kLen, '\0');
  std::vector<char> all(static_cast<size_t>(size) * kLen);
  check(MPI_Allgather(mine.data(), kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, comm), "Allgather");
  std::string out;
  for (int r = 0; r < size;) {
    const std::string h(all.data() + static_cast<size_t>(r) * kLen);
    int e = r;
    while (e + 1 < size && std::string(all.data() + static_cast<size_t>(e + 1) * kLen) == h) ++e;
    out += fmt::format("{}{} (rank{} {})", out.empty() ? "" : ", ", h, e > r ? "s" : "",
                       e > r ? fmt::format("{}-{}", r, e) : std::to_string(r));
    r = e + 1;
  }
  return out;
}

}  // namespace scorch::dist::mpi_detail
