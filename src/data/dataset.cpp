// Dataset files in the scorch schema, the Fashion-MNIST converter, and the scalers that
// map 8-bit images to network input and back.
#include "scorch/data/dataset.h"

#include <filesystem>

#include "scorch/core/error.h"
#include "scorch/data/idx.h"
#include "scorch/io/hdf5.h"

namespace scorch::data {

Dataset load(const std::string& path, int64_t limit) {
  auto f = h5::File::open_read(path);
  Dataset ds;
  ds.path = path;
  bool has_images = h5::exists(f.id(), "images"), has_points = h5::exists(f.id(), "points");
  SCORCH_CHECK(has_images != has_points, "{}: a dataset file holds exactly one of /images or /points (found {})", path,
               has_images ? "both" : "neither");
  std::string name = has_images ? "images" : "points";
  auto shape = h5::shape(f.id(), name);
  SCORCH_CHECK(shape.size() == (has_images ? 4u : 2u), "{}: /{} must be {} (got {} dims)", path, name,
               has_images ? "[N,H,W,C]" : "[N,D]", shape.size());
  int64_t n = limit > 0 ? std::min(limit, shape[0]) : shape[0];
  SCORCH_CHECK(n > 0, "{}: /{} is empty", path, name);
  auto t = h5::read_rows(f.id(), name, 0, n, path);
  if (has_images) {
    SCORCH_CHECK(t.scalar_type() == torch::kUInt8, "{}: /images must be uint8", path);
    ds.images = t;
  } else {
    ds.points = t.to(torch::kFloat32);
  }
  if (h5::exists(f.id(), "labels")) {
    auto ls = h5::shape(f.id(), "labels");
    SCORCH_CHECK(ls.size() == 1 && ls[0] == shape[0], "{}: /labels must be [N] with N = {}", path, shape[0]);
    ds.labels = h5::read_rows(f.id(), "labels", 0, n, path).to(torch::kInt64);
  }
  return ds;
}

void check_matches(const Dataset& ds, const Config& cfg) {
  if (cfg.is_image_data()) {
    SCORCH_CHECK(ds.is_image(), "{}: holds /points but the config expects images (data.dim = 0)", ds.path);
    SCORCH_CHECK(ds.images.size(1) == cfg.data.image_size && ds.images.size(2) == cfg.data.image_size &&
                     ds.images.size(3) == cfg.data.num_channels,
                 "{}: images are {}x{}x{} (HxWxC) but the config says data.image_size = {}, data.num_channels = {}",
                 ds.path, ds.images.size(1), ds.images.size(2), ds.images.size(3), cfg.data.image_size,
                 cfg.data.num_channels);
  } else {
    SCORCH_CHECK(!ds.is_image(), "{}: holds /images but the config expects points (data.dim = {})", ds.path,
                 cfg.data.dim);
    SCORCH_CHECK(ds.points.size(1) == cfg.data.dim, "{}: points have dimension {} but data.dim = {}", ds.path,
                 ds.points.size(1), cfg.data.dim);
  }
}

namespace {
void write_dataset(const std::string& path, const std::string& name, const torch::Tensor& data,
                   const torch::Tensor& labels) {
  h5::write_atomically(path, [&](hid_t f) {
    h5::write_tensor(f, name, data);
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
