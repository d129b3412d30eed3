// Datasets in the scorch HDF5 schema: one file per split with `/images` uint8 [N,H,W,C]
// (or `/points` float32 [N,D]) and optional `/labels` int64 [N] at the root. This header
// reads and writes them and turns raw batches into network input.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

#include "scorch/core/config.h"
#include "scorch/core/memory.h"

namespace scorch::data {

struct Dataset {
  std::string path;
  torch::Tensor images;  // uint8 [N,H,W,C], or undefined for point data
  torch::Tensor points;  // float32 [N,D], or undefined for image data
  torch::Tensor labels;  // int64 [N], or undefined
  int64_t size() const { return images.defined() ? images.size(0) : points.size(0); }
  bool is_image() const { return images.defined(); }
};

// What a dataset file claims, checked before anything is read: the schema (/images stored
// as uint8), that the data is really stored (no unwritten chunks, no missing virtual
// sources) and, with `check_memory`, that it fits in this machine's memory. Throws naming
// the file.
struct DatasetInfo {
  std::string path;
  bool image = true;
  std::vector<int64_t> shape;  // [N,H,W,C] or [N,D]
  int64_t bytes = 0;           // in memory
};
DatasetInfo inspect(const std::string& path, int64_t limit = 0, bool check_memory = false);

// Bytes of memory available to this process: core/memory.h's available_memory().
using scorch::available_memory;
// Throws naming the file unless `copies` copies of its data (one per rank of this node
// for data.source = memory) fit in 80% of available_memory().
void check_fits_in_memory(const DatasetInfo& info, double copies = 1.0);

// Loads the first `limit` items (all if limit <= 0) into memory, its size checked before
// its storage (a damaged file's claim fails as too big, not as unwritten).
Dataset load(const std::string& path, int64_t limit = 0);
// Loads what inspect() checked (info.shape[0] items), after check_fits_in_memory(info, copies).
Dataset load(const DatasetInfo& info, double copies = 1.0);

// Checks that the dataset matches the configuration (image size, channels, point dim).
void check_matches(const DatasetInfo& info, const Config& cfg);

// Writes a dataset file atomically (temp file, fsync, rename). `labels` may be undefined.
// Rows are stored in checksummed chunks of ~4 KiB (at least one row), so that streaming
// reads touch only the rows they need; files written with bigger chunks still load.
void write_images(const std::string& path, const torch::Tensor& images_nhwc_u8, const torch::Tensor& labels);
void write_points(const std::string& path, const torch::Tensor& points_f32, const torch::Tensor& labels);

// uint8 [B,H,W,C] -> float32 [B,C,H,W] in [0,1]. With `dequant_noise` (U[0,1) [B,C,H,W])
// applies uniform dequantisation (u + 255 x) / 256.
torch::Tensor images_to_unit(const torch::Tensor& u8_nhwc, const torch::Tensor& dequant_noise = {});
// Scaler and inverse scaler of score_sde's datasets.py (get_data_scaler,
// get_data_inverse_scaler): [0,1] <-> [-1,1] when centered.
torch::Tensor scale(const torch::Tensor& x01, bool centered);
torch::Tensor unscale(const torch::Tensor& x, bool centered);
// float [B,C,H,W] in [0,1] -> uint8 [B,H,W,C] (clamped, rounded).
torch::Tensor unit_to_images(const torch::Tensor& x01);

// `scorch prepare fashion-mnist`: IDX files in `raw_dir` -> `<out_dir>/fashion_mnist_{train,test}.h5`.
// Returns the two paths written.
std::vector<std::string> prepare_fashion_mnist(const std::string& raw_dir, const std::string& out_dir);

}  // namespace scorch::data
