// Communicator over MPI for CPU tensors. Large buffers are sent in pieces of at most
// 2^30 elements because MPI counts are ints.
#include <mpi.h>

#include <limits>

#include "scorch/core/error.h"
#include "scorch/dist/communicator.h"

namespace scorch::dist {

namespace {

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

constexpr int64_t kMaxCount = int64_t(1) << 30;

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return fmt::format("mpi({} ranks)", size_); }

  void allreduce_sum(torch::Tensor& t) override {
    SCORCH_CHECK(t.is_contiguous() && t.device().is_cpu(), "MPI allreduce needs a contiguous CPU tensor");
    if (size_ == 1) return;
    auto type = mpi_type(t.scalar_type());
    auto* base = static_cast<char*>(t.data_ptr());
    for (int64_t off = 0; off < t.numel(); off += kMaxCount) {
      int n = static_cast<int>(std::min(kMaxCount, t.numel() - off));
      check(MPI_Allreduce(MPI_IN_PLACE, base + off * t.element_size(), n, type, MPI_SUM, comm_), "Allreduce");
    }
  }

  void broadcast(torch::Tensor& t, int root) override {
    SCORCH_CHECK(t.is_contiguous() && t.device().is_cpu(), "MPI broadcast needs a contiguous CPU tensor");
    if (size_ == 1) return;
    auto* base = static_cast<char*>(t.data_ptr());
    int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    for (int64_t off = 0; off < bytes; off += kMaxCount) {
      int n = static_cast<int>(std::min(kMaxCount, bytes - off));
      check(MPI_Bcast(base + off, n, MPI_BYTE, root, comm_), "Bcast");
    }
  }

  torch::Tensor gather_rows(const torch::Tensor& t_in, int root) override {
    auto t = t_in.contiguous().cpu();
    int64_t row_bytes = t.dim() == 0 ? t.element_size() : (t.numel() / std::max<int64_t>(t.size(0), 1)) * t.element_size();
    if (t.dim() > 0 && t.size(0) == 0) {
      auto s = t.sizes().vec();
      s[0] = 1;
      row_bytes = c10::multiply_integers(s) * t.element_size();
    }
    int64_t rows = t.dim() == 0 ? 1 : t.size(0);
    auto my_bytes = rows * row_bytes;
    SCORCH_CHECK(my_bytes < std::numeric_limits<int>::max(), "gather_rows: shard too large for one MPI call");
    std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
    int mine = static_cast<int>(my_bytes);
    check(MPI_Gather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm_), "Gather");
    torch::Tensor out;
    char* recv = nullptr;
    if (rank_ == root) {
      int64_t total = 0;
      for (int r = 0; r < size_; ++r) {
        displs[static_cast<size_t>(r)] = static_cast<int>(total);
        total += counts[static_cast<size_t>(r)];
      }
      SCORCH_CHECK(total < std::numeric_limits<int>::max(), "gather_rows: result too large for one MPI call");
      auto s = t.dim() == 0 ? std::vector<int64_t>{} : t.sizes().vec();
      if (!s.empty()) s[0] = total / row_bytes;
      out = torch::empty(s.empty() ? std::vector<int64_t>{total / row_bytes} : s, t.options());
      recv = static_cast<char*>(out.data_ptr());
    }
    check(MPI_Gatherv(t.data_ptr(), mine, MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE, root, comm_),
          "Gatherv");
    return out;
  }

  void barrier() override { check(MPI_Barrier(comm_), "Barrier"); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(comm_, code);
    std::abort();
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  set_error_rank(rank);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::unique_ptr<Communicator> mpi_world() { return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD); }
std::unique_ptr<Communicator> mpi_self() { return std::make_unique<MpiCommunicator>(MPI_COMM_SELF); }

}  // namespace scorch::dist
