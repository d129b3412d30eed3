// The three data sources behind data/source.h and the `auto` choice between them.
#include "scorch/data/source.h"

#include <sys/stat.h>

#include <algorithm>
#include <numeric>

#include "scorch/core/error.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/names.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/hdf5.h"

namespace scorch::data {

SourceOptions source_options(const Config& cfg, int64_t limit) {
  SourceOptions o;
  o.kind = cfg.data.source;
  o.cache_mb = cfg.data.cache_mb;
  o.limit = limit;
  return o;
}

Source::Source(DatasetInfo info, torch::Tensor labels, std::string why)
    : info_(std::move(info)), labels_(std::move(labels)), why_(std::move(why)) {}
Source::~Source() = default;

void Source::check_indices(const torch::Tensor& idx) const {
  SCORCH_CHECK(idx.dim() == 1 && idx.scalar_type() == torch::kInt64 && idx.device().is_cpu(),
               "{}: row indices must be a CPU int64 [b] tensor", path());
  if (idx.numel() == 0) return;
  const int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
  SCORCH_CHECK(lo >= 0 && hi < size(), "{}: rows {}..{} asked for, but the source holds rows [0, {})", path(), lo, hi,
               size());
}

torch::Tensor Source::gather(const torch::Tensor& idx) const {
  auto shape = item_shape();
  shape.insert(shape.begin(), idx.size(0));
  auto out = torch::empty(shape, torch::TensorOptions().dtype(dtype()));
  gather(idx, out);
  return out;
}

torch::Tensor Source::rows(int64_t start, int64_t count) const {
  return gather(torch::arange(start, start + count, torch::kInt64));
}

namespace {

void check_out(const Source& s, const torch::Tensor& idx, const torch::Tensor& out) {
  SCORCH_CHECK(out.is_contiguous() && out.device().is_cpu() && out.scalar_type() == s.dtype() &&
                   out.dim() == static_cast<int64_t>(s.info().shape.size()) && out.size(0) == idx.size(0),
               "{}: gather needs a contiguous CPU {} tensor of {} rows", s.path(), c10::toString(s.dtype()),
               idx.size(0));
}

torch::Tensor read_labels(const DatasetInfo& info) {
  auto f = h5::File::open_read(info.path);
  if (!h5::exists(f.id(), "labels")) return {};
  return h5::read_rows(f.id(), "labels", 0, info.shape[0], info.path).to(torch::kInt64);
}

class MemorySource final : public Source {
 public:
  MemorySource(const DatasetInfo& info, std::string why, double copies)
      : Source(info, torch::Tensor(), std::move(why)) {
    ds_ = load(info, copies);  // checks that `copies` fit first
    labels_ = ds_.labels;
  }
  MemorySource(Dataset ds, DatasetInfo info) : Source(std::move(info), ds.labels, "given in memory"), ds_(std::move(ds)) {}
  void gather(const torch::Tensor& idx, torch::Tensor& out) const override {
    check_indices(idx);
    check_out(*this, idx, out);
    torch::index_select_out(out, info_.image ? ds_.images : ds_.points, 0, idx);
  }
  std::string kind() const override { return "memory"; }
  int64_t resident_bytes() const override { return info_.bytes; }

 private:
  Dataset ds_;
};

class NodeSharedSource final : public Source {
 public:
  NodeSharedSource(const DatasetInfo& info, std::string why, dist::Communicator& comm)
      : Source(info, read_labels(info), std::move(why)) {
    check_fits_in_memory(info);
    try {
      shared_ = comm.make_node_shared(info.bytes);
    } catch (const std::exception& e) {
      SCORCH_THROW("{}: cannot allocate the node's shared copy ({}): {} (Open MPI backs it with a file in /dev/shm or "
                   "its session directory: is there room? data.source = \"stream\" needs none)",
                   info.path, format_bytes(static_cast<double>(info.bytes)), e.what());
    }
    auto shape = info.shape;
    data_ = torch::from_blob(shared_->data(), shape, torch::TensorOptions().dtype(dtype()));
    // Each of the node's ranks reads its slice of the rows; a failure anywhere is agreed on
    // over the whole job before anyone reads the window, so no rank waits for a lost slice.
    const auto slice = dist::Range{info.shape[0] * shared_->node_rank() / shared_->node_size(),
                                   info.shape[0] * (shared_->node_rank() + 1) / shared_->node_size()};
    std::string error;
    try {
      h5::RowReader reader(info.path, info.image ? "images" : "points", 0);
      constexpr int64_t kPiece = 4096;  // rows per read
      for (int64_t a = slice.begin; a < slice.end; a += kPiece) {
        const int64_t n = std::min(kPiece, slice.end - a);
        std::vector<int64_t> rows(static_cast<size_t>(n));
        std::iota(rows.begin(), rows.end(), a);
        auto dst = data_.slice(0, a, a + n);
        reader.read(rows, dst);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    auto failed = torch::tensor({error.empty() ? 0 : 1}, torch::kInt32);
    comm.allreduce_sum(failed);
    SCORCH_CHECK(error.empty(), "{}", error);
    SCORCH_CHECK(failed.item<int>() == 0, "{}: another rank failed to read its slice into the node's shared copy",
                 info.path);
    shared_->node_barrier();
  }
  void gather(const torch::Tensor& idx, torch::Tensor& out) const override {
    check_indices(idx);
    check_out(*this, idx, out);
    torch::index_select_out(out, data_, 0, idx);
  }
  std::string kind() const override { return "node_shared"; }
  int64_t resident_bytes() const override { return shared_->allocated_here(); }

 private:
  std::unique_ptr<dist::NodeShared> shared_;
  torch::Tensor data_;  // a view of the window
};

class StreamSource final : public Source {
 public:
  StreamSource(const DatasetInfo& info, std::string why, double cache_mb)
      : Source(info, read_labels(info), std::move(why)),
        cache_bytes_(static_cast<int64_t>(cache_mb * 1024 * 1024)),
        reader_(std::make_unique<h5::RowReader>(info.path, info.image ? "images" : "points", cache_bytes_)),
        opened_(stat_of(info.path)) {}
  void gather(const torch::Tensor& idx, torch::Tensor& out) const override {
    // Streamed rows come from the file as it is now: one that changed since the run opened
    // it (rewritten in place, replaced, grown or shrunk) would feed other data than the run
    // started with, silently. One stat per batch: identity (device, inode), size, mtime, ctime.
    const auto now = stat_of(info_.path);
    if (now != opened_) {
      SCORCH_THROW("{} changed while this run streams it ({}): a data set must not change under a run. Restore it, or "
                   "start the run again on the new file", info_.path, now.what_changed(opened_));
    }
    check_indices(idx);
    check_out(*this, idx, out);
    const int64_t b = idx.size(0);
    if (b == 0) return;
    // Sorted, distinct rows for locality; then each requested position takes its row.
    const auto* p = idx.data_ptr<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(b));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return p[a] < p[c]; });
    std::vector<int64_t> rows;
    std::vector<int64_t> where(static_cast<size_t>(b));
    for (int64_t k : order) {
      if (rows.empty() || rows.back() != p[k]) rows.push_back(p[k]);
      where[static_cast<size_t>(k)] = static_cast<int64_t>(rows.size()) - 1;
    }
    bool identity = static_cast<int64_t>(rows.size()) == b;
    for (int64_t k = 0; identity && k < b; ++k) identity = where[static_cast<size_t>(k)] == k;
    if (identity) {
      reader_->read(rows, out);
      return;
    }
    auto shape = out.sizes().vec();
    shape[0] = static_cast<int64_t>(rows.size());
    auto tmp = torch::empty(shape, out.options());
    reader_->read(rows, tmp);
    torch::index_select_out(out, tmp, 0, torch::tensor(where, torch::kInt64));
  }
  std::string kind() const override { return "stream"; }
  int64_t resident_bytes() const override { return std::min(cache_bytes_, info_.bytes); }

 private:
  struct FileStat {
    uint64_t dev = 0, ino = 0;
    int64_t size = -1, mtime_ns = 0, ctime_ns = 0;
    bool operator!=(const FileStat& o) const {
      return dev != o.dev || ino != o.ino || size != o.size || mtime_ns != o.mtime_ns || ctime_ns != o.ctime_ns;
    }
    std::string what_changed(const FileStat& was) const {
      if (size < 0) return "it is gone";
      if (dev != was.dev || ino != was.ino) return "another file now has its name";
      if (size != was.size) {
        return fmt::format("it {} from {} bytes when opened to {} now", size < was.size ? "shrank" : "grew", was.size, size);
      }
      return "rewritten in place: its modification time changed";
    }
  };
  static FileStat stat_of(const std::string& path) {
    struct stat st {};
    FileStat f;
    if (::stat(path.c_str(), &st) != 0) return f;
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.size = st.st_size;
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    f.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    return f;
  }

  int64_t cache_bytes_;
  std::unique_ptr<h5::RowReader> reader_;
  FileStat opened_;
};

}  // namespace

std::unique_ptr<Source> in_memory(Dataset ds) {
  DatasetInfo info;
  info.path = ds.path;
  info.image = ds.is_image();
  if (ds.is_image()) {
    SCORCH_CHECK(ds.images.scalar_type() == torch::kUInt8 && ds.images.dim() == 4, "{}: images must be uint8 [N,H,W,C]",
                 ds.path);
    ds.images = ds.images.contiguous();
  } else {
    SCORCH_CHECK(ds.points.dim() == 2, "{}: points must be [N,D]", ds.path);
    ds.points = ds.points.to(torch::kFloat32).contiguous();
  }
  const auto& t = ds.is_image() ? ds.images : ds.points;
  info.shape = t.sizes().vec();
  info.bytes = t.numel() * static_cast<int64_t>(t.element_size());
  return std::make_unique<MemorySource>(std::move(ds), std::move(info));
}

std::unique_ptr<Source> open_source(const std::string& path, const SourceOptions& opt, dist::Communicator* comm) {
  return open_source(inspect(path, opt.limit), opt, comm);
}

std::unique_ptr<Source> open_source(const DatasetInfo& info, const SourceOptions& opt, dist::Communicator* comm) {
  SCORCH_CHECK(names::contains(names::data_sources(), opt.kind), "data.source = \"{}\" is not one of: {}", opt.kind,
               names::joined(names::data_sources()));
  const std::string& path = info.path;
  std::string kind = opt.kind, why = "data.source = \"" + opt.kind + "\"";
  const int local = comm ? comm->local_size() : 1;
  if (kind == "auto") {
    // Every node judges from its own memory and number of ranks; the job takes the most
    // frugal verdict of any node (memory < node_shared < stream), so that all ranks take
    // the same branch, and says which node decided.
    const double avail = available_memory(), bytes = static_cast<double>(info.bytes);
    constexpr double kSmall = 1e9;  // below this, a copy per rank costs nothing worth saving
    int64_t verdict = 2;
    if (bytes * local <= std::min(kSmall, 0.25 * avail)) {
      verdict = 0;
      why = fmt::format("auto: {} x {} rank(s) on {} is small", format_bytes(bytes), local, host_name());
    } else if (comm && bytes <= 0.5 * avail) {
      verdict = 1;
      why = fmt::format("auto: one {} copy per node fits in the {} available on {}, {} per rank would not",
                        format_bytes(bytes), format_bytes(avail), host_name(), local);
    } else {
      why = fmt::format("auto: {} is more than half the {} {} has available", format_bytes(bytes), format_bytes(avail),
                        host_name());
    }
    if (comm && comm->size() > 1) {
      // The first rank with the most frugal verdict tells everyone why.
      auto all = comm->all_gather(torch::tensor({verdict}, torch::kInt64));
      const auto worst = all.max().item<int64_t>();
      const int decider = static_cast<int>((all == worst).nonzero()[0][0].item<int64_t>());
      verdict = worst;
      why = dist::broadcast_string(*comm, why, decider);
    }
    kind = verdict == 0 ? "memory" : verdict == 1 ? "node_shared" : "stream";
  }
  if (kind == "memory") return std::make_unique<MemorySource>(info, why, static_cast<double>(local));
  if (kind == "node_shared") {
    SCORCH_CHECK(comm, "{}: data.source = \"node_shared\" needs the job's communicator", path);
    return std::make_unique<NodeSharedSource>(info, why, *comm);
  }
  return std::make_unique<StreamSource>(info, why, opt.cache_mb);
}

}  // namespace scorch::data
