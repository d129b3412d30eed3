// Dataset files in the scorch schema, the Fashion-MNIST converter, and the scalers that
// map 8-bit images to network input and back.
#include "scorch/data/dataset.h"


#include <filesystem>
#include <fstream>

#include "scorch/core/error.h"
#include "scorch/data/idx.h"
#include "scorch/io/hdf5.h"

namespace scorch::data {

namespace {

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Reads what inspect() checked into memory (no size check: the callers make it).
Dataset read_all(const DatasetInfo& info) {
  const std::string& path = info.path;
  auto f = h5::File::open_read(path);
  Dataset ds;
  ds.path = path;
  const std::string name = info.image ? "images" : "points";
  const int64_t n = info.shape[0];
  auto t = h5::read_rows(f.id(), name, 0, n, path);
  if (info.image) {
    ds.images = t;  // uint8 (inspect)
  } else {
    ds.points = t.to(torch::kFloat32);
  }
  if (h5::exists(f.id(), "labels")) ds.labels = h5::read_rows(f.id(), "labels", 0, n, path).to(torch::kInt64);
  return ds;
}

}  // namespace


void check_fits_in_memory(const DatasetInfo& info, double copies) {
  const double avail = available_memory(), need = static_cast<double>(info.bytes) * copies;
  SCORCH_CHECK(need <= 0.8 * avail,
               "{}: /{} claims shape {}, {:.3g} GB in memory{}, but this machine has {:.3g} GB available: a damaged "
               "file, or a data set to read with data.source = \"stream\" (or \"node_shared\": one copy per node)",
               info.path, info.image ? "images" : "points", shape_str(info.shape), need / 1e9,
               copies > 1 ? fmt::format(" ({:g} copies, one per rank on this node)", copies) : "", avail / 1e9);
}

DatasetInfo inspect(const std::string& path, int64_t limit, bool check_memory) {
  auto f = h5::File::open_read(path);
  DatasetInfo info;
  info.path = path;
  bool has_images = h5::exists(f.id(), "images"), has_points = h5::exists(f.id(), "points");
  SCORCH_CHECK(has_images != has_points, "{}: a dataset file holds exactly one of /images or /points (found {})", path,
               has_images ? "both" : "neither");
  info.image = has_images;
  const std::string name = has_images ? "images" : "points";
  if (has_images) {
    const auto words = h5::stored_type_words(f.id(), name, path);
    SCORCH_CHECK(words.rfind("uint8 ", 0) == 0, "{}: /images must be uint8 (0..255 per channel), stored as {}", path,
                 words);
  }
  info.shape = h5::shape(f.id(), name);
  SCORCH_CHECK(info.shape.size() == (has_images ? 4u : 2u), "{}: /{} must be {} (got {} dims)", path, name,
               has_images ? "[N,H,W,C]" : "[N,D]", info.shape.size());
  for (auto d : info.shape) SCORCH_CHECK(d > 0, "{}: /{} has shape {}: empty", path, name, shape_str(info.shape));
  if (limit > 0) info.shape[0] = std::min(limit, info.shape[0]);
  double elems = 1;
  for (auto d : info.shape) elems *= static_cast<double>(d);
  const double bytes = elems * (has_images ? 1.0 : 4.0);
  info.bytes = static_cast<int64_t>(bytes);
  if (check_memory) check_fits_in_memory(info);
  h5::check_stored(f.id(), name, path);
  if (h5::exists(f.id(), "labels")) {
    auto ls = h5::shape(f.id(), "labels");
    auto full = h5::shape(f.id(), name);
    SCORCH_CHECK(ls.size() == 1 && ls[0] == full[0], "{}: /labels must be [N] with N = {} (got {})", path, full[0],
                 shape_str(ls));
    h5::check_stored(f.id(), "labels", path);
  }
  return info;
}

Dataset load(const std::string& path, int64_t limit) { return read_all(inspect(path, limit, true)); }

Dataset load(const DatasetInfo& info, double copies) {
  check_fits_in_memory(info, copies);
  return read_all(info);
}

void check_matches(const DatasetInfo& info, const Config& cfg) {
  if (cfg.is_image_data()) {
    SCORCH_CHECK(info.image, "{}: holds /points but the config expects images (data.dim = 0)", info.path);
    SCORCH_CHECK(info.shape[1] == cfg.data.image_size && info.shape[2] == cfg.data.image_size &&
                     info.shape[3] == cfg.data.num_channels,
                 "{}: images are {}x{}x{} (HxWxC) but the config says data.image_size = {}, data.num_channels = {}",
                 info.path, info.shape[1], info.shape[2], info.shape[3], cfg.data.image_size, cfg.data.num_channels);
  } else {
    SCORCH_CHECK(!info.image, "{}: holds /images but the config expects points (data.dim = {})", info.path,
                 cfg.data.dim);
    SCORCH_CHECK(info.shape[1] == cfg.data.dim, "{}: points have dimension {} but data.dim = {}", info.path,
                 info.shape[1], cfg.data.dim);
  }
}

namespace {
constexpr int64_t kRowChunkBytes = 4 * 1024;

void write_dataset(const std::string& path, const std::string& name, const torch::Tensor& data,
                   const torch::Tensor& labels) {
  h5::write_atomically(path, [&](hid_t f) {
    // Row chunks of ~4 KiB, at least one row (one CIFAR-10 image, five Fashion-MNIST images,
    // one 256x256 image): a streamed row reads and checksums only its own chunk
    // (data/source.h). `scorch bench data`, 32x32 streamed: 12,100 images/s per rank with
    // these chunks, 11,600 with 64 KiB ones, whose chunk cache held 6x the memory.
    h5::write_tensor(f, name, data, kRowChunkBytes);
    if (labels.defined()) h5::write_tensor(f, "labels", labels.to(torch::kInt64));
    h5::set_attr(f, "schema", std::string("scorch-dataset-v1"));
  });
}
}  // namespace

void write_images(const std::string& path, const torch::Tensor& images, const torch::Tensor& labels) {
  SCORCH_CHECK(images.dim() == 4 && images.scalar_type() == torch::kUInt8, "write_images: need uint8 [N,H,W,C]");
  write_dataset(path, "images", images, labels);
}

void write_points(const std::string& path, const torch::Tensor& points, const torch::Tensor& labels) {
  SCORCH_CHECK(points.dim() == 2, "write_points: need [N,D]");
  write_dataset(path, "points", points.to(torch::kFloat32), labels);
}

torch::Tensor images_to_unit(const torch::Tensor& u8, const torch::Tensor& noise) {
  auto x = u8.permute({0, 3, 1, 2}).to(torch::kFloat32);
  if (noise.defined()) return (noise + x) / 256.0;
  return x / 255.0;
}

torch::Tensor scale(const torch::Tensor& x01, bool centered) { return centered ? x01 * 2.0 - 1.0 : x01; }
torch::Tensor unscale(const torch::Tensor& x, bool centered) { return centered ? (x + 1.0) / 2.0 : x; }

torch::Tensor unit_to_images(const torch::Tensor& x01) {
  return (x01.clamp(0.0, 1.0) * 255.0).round().to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

std::vector<std::string> prepare_fashion_mnist(const std::string& raw_dir, const std::string& out_dir) {
  std::vector<std::string> written;
  for (auto [split, prefix] : {std::pair{"train", "train"}, std::pair{"test", "t10k"}}) {
    auto img_path = fmt::format("{}/{}-images-idx3-ubyte.gz", raw_dir, prefix);
    auto lab_path = fmt::format("{}/{}-labels-idx1-ubyte.gz", raw_dir, prefix);
    auto img = read_idx(img_path, 0x803);
    auto lab = read_idx(lab_path, 0x801);
    SCORCH_CHECK(img.dims.size() == 3, "{}: images must have 3 dimensions", img_path);
    SCORCH_CHECK(img.dims[0] == lab.dims[0], "{} has {} images but {} has {} labels", img_path, img.dims[0],
                 lab_path, lab.dims[0]);
    auto images = torch::from_blob(img.bytes.data(), {img.dims[0], img.dims[1], img.dims[2], 1}, torch::kUInt8).clone();
    auto labels = torch::from_blob(lab.bytes.data(), {lab.dims[0]}, torch::kUInt8).to(torch::kInt64);
    auto out = fmt::format("{}/fashion_mnist_{}.h5", out_dir, split);
    write_images(out, images, labels);
    written.push_back(out);
  }
  return written;
}

}  // namespace scorch::data
