// Where a data set lives while a job reads it: one interface, three sources, chosen once
// (`data.source`) and read by index everywhere (training batches, eval bpd, encode, FID
// statistics).
//  - memory: every rank loads the whole split (small sets, tests).
//  - node_shared: the ranks of a node share one copy in an MPI-3 shared-memory window;
//    each of them reads a slice of the file into it once (dist::NodeShared).
//  - stream: each rank reads only the rows it asks for from the HDF5 file, with one
//    selection per call and a chunk cache of `data.cache_mb`; its memory does not grow with
//    the data set. Truncation under a running job and checksum failures are errors naming
//    the file and the rows, never zeros.
//  - auto: memory for small files, node_shared when one copy fits comfortably in the
//    node's memory, stream otherwise, judged on every node from its own memory and ranks;
//    the job takes the most frugal node's verdict; describe() says which, why and where.
// Class labels (8 bytes a row) are always held in memory. Every source returns the same
// bytes for the same rows, so batches are bitwise equal whatever the source.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "scorch/data/dataset.h"
#include "scorch/dist/communicator.h"

namespace scorch::h5 {
class RowReader;
}

namespace scorch::data {

struct SourceOptions {
  std::string kind = "auto";  // auto | memory | node_shared | stream (core/names.h)
  double cache_mb = 64;       // stream: HDF5 chunk cache
  int64_t limit = 0;          // only the first `limit` rows (all if <= 0)
};
SourceOptions source_options(const Config& cfg, int64_t limit = 0);

class Source {
 public:
  virtual ~Source();
  const DatasetInfo& info() const { return info_; }
  const std::string& path() const { return info_.path; }
  int64_t size() const { return info_.shape[0]; }
  bool is_image() const { return info_.image; }
  // One row's shape: [H,W,C] or [D].
  std::vector<int64_t> item_shape() const { return {info_.shape.begin() + 1, info_.shape.end()}; }
  // uint8 for images, float32 for points.
  torch::ScalarType dtype() const { return is_image() ? torch::kUInt8 : torch::kFloat32; }
  // int64 [N], or undefined when the file has no /labels.
  const torch::Tensor& labels() const { return labels_; }
  // Rows `idx` (int64 [b], any order, repeats allowed, in [0, size())) into `out`, a
  // contiguous CPU tensor [b, ...item] of dtype(). Thread-safe.
  virtual void gather(const torch::Tensor& idx, torch::Tensor& out) const = 0;
  // The same into a new tensor ([b, ...item], dtype()).
  torch::Tensor gather(const torch::Tensor& idx) const;
  // Rows [start, start + count) into a new tensor.
  torch::Tensor rows(int64_t start, int64_t count) const;
  virtual std::string kind() const = 0;
  // Bytes of data this rank allocated (node_shared: the node's copy on its first rank, 0 on
  // the others; stream: the chunk cache at most).
  virtual int64_t resident_bytes() const = 0;
  // "stream (auto: 5.9 GB x 8 ranks exceeds ...)": the log line of the choice.
  std::string describe() const { return kind() + " (" + why_ + ")"; }

 protected:
  Source(DatasetInfo info, torch::Tensor labels, std::string why);
  void check_indices(const torch::Tensor& idx) const;
  DatasetInfo info_;
  torch::Tensor labels_;
  std::string why_;
};

// Opens `path` as the source `opt.kind` says (auto decides by the file's size, the node's
// ranks and its available memory): open_source(inspect(path, opt.limit), ...). `comm` is
// needed for node_shared (collective over the job then; with auto, every node judges and
// all ranks take the most frugal verdict).
// Throws naming the file before anything large is read.
std::unique_ptr<Source> open_source(const std::string& path, const SourceOptions& opt,
                                    dist::Communicator* comm = nullptr);
// The same for a file the caller has inspected (its row limit is info.shape[0]; opt.limit
// is not used), so that it is not inspected twice.
std::unique_ptr<Source> open_source(const DatasetInfo& info, const SourceOptions& opt,
                                    dist::Communicator* comm = nullptr);

// A memory source over data already loaded (tests, generated data).
std::unique_ptr<Source> in_memory(Dataset ds);

}  // namespace scorch::data
