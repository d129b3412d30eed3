// CIFAR-10 binary batches (folder or tarball, read with zlib and a 512-byte-header tar walk)
// and image folders (stb_image + stb_image_resize) to the HDF5 dataset schema.
#include "scorch/data/converters.h"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/sharding.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image_resize.h>

namespace fs = std::filesystem;

namespace scorch::data {

namespace {

constexpr int64_t kCifarRecord = 3073;
const std::vector<std::string> kCifarTrain = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                              "data_batch_4.bin", "data_batch_5.bin"};
const std::string kCifarTest = "test_batch.bin";

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SCORCH_CHECK(f.good(), "cannot open '{}'", path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The members of a (gzip'd) tar whose base names are in `wanted`, by base name.
std::map<std::string, std::string> read_tar_members(const std::string& path, const std::vector<std::string>& wanted) {
  gzFile gz = gzopen(path.c_str(), "rb");  // also reads an uncompressed tar
  SCORCH_CHECK(gz != nullptr, "cannot open '{}'", path);
  std::map<std::string, std::string> out;
  auto read = [&](char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      int r = gzread(gz, buf + got, static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30)));
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  };
  char header[512];
  std::string long_name;
  try {
    while (true) {
      size_t got = read(header, 512);
      if (got == 0) break;
      SCORCH_CHECK(got == 512, "'{}': truncated tar header", path);
      if (std::all_of(header, header + 512, [](char c) { return c == 0; })) break;  // end-of-archive block
      std::string name(header, strnlen(header, 100));
      std::string prefix(header + 345, strnlen(header + 345, 155));
      if (!prefix.empty() && std::string(header + 257, 5) == "ustar") name = prefix + "/" + name;
      if (!long_name.empty()) name = long_name, long_name.clear();
      const std::string size_field(header + 124, strnlen(header + 124, 12));
      int64_t size = 0;
      try {
        size = std::stoll(size_field, nullptr, 8);
      } catch (const std::exception&) {
        SCORCH_THROW("'{}': bad size field in the tar header of '{}'", path, name);
      }
      const char type = header[156];
      std::string data(static_cast<size_t>(size), '\0');
      SCORCH_CHECK(read(data.data(), data.size()) == data.size(), "'{}': member '{}' is truncated", path, name);
      const size_t pad = static_cast<size_t>((512 - size % 512) % 512);
      char skip[512];
      SCORCH_CHECK(read(skip, pad) == pad, "'{}': truncated after member '{}'", path, name);
      if (type == 'L') {  // GNU long name for the next member
        long_name = std::string(data.c_str());
        continue;
      }
      const std::string base = fs::path(name).filename().string();
      if ((type == '0' || type == '\0') && std::find(wanted.begin(), wanted.end(), base) != wanted.end())
        out[base] = std::move(data);
    }
  } catch (...) {
    gzclose(gz);
    throw;
  }
  gzclose(gz);
  return out;
}

std::pair<std::string, std::string> cifar_out_paths(const std::string& out) {
  fs::path p(out);
  if (p.extension() == ".h5") {
    fs::path test = p.parent_path() / (p.stem().string() + "_test.h5");
    return {p.string(), test.string()};
  }
  return {(p / "cifar10_train.h5").string(), (p / "cifar10_test.h5").string()};
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> decode_cifar10_batch(const std::string& bytes, const std::string& name) {
  const int64_t size = static_cast<int64_t>(bytes.size());
  SCORCH_CHECK(size > 0 && size % kCifarRecord == 0,
               "{}: {} bytes is not a whole number of 3073-byte CIFAR-10 records (1 label + 3x32x32 pixels)", name,
               size);
  const int64_t n = size / kCifarRecord;
  auto raw = torch::from_blob(const_cast<char*>(bytes.data()), {n, kCifarRecord}, torch::kUInt8);
  auto labels = raw.select(1, 0).to(torch::kInt64);
  auto bad = (labels > 9).nonzero();
  SCORCH_CHECK(bad.numel() == 0, "{}: record {} has label {} (CIFAR-10 labels are 0-9)", name,
               bad.numel() ? bad[0][0].item<int64_t>() : 0,
               bad.numel() ? labels[bad[0][0].item<int64_t>()].item<int64_t>() : 0);
  auto images = raw.narrow(1, 1, 3072).reshape({n, 3, 32, 32}).permute({0, 2, 3, 1}).contiguous();
  return {images, labels};
}

std::vector<std::string> prepare_cifar10(const std::string& raw, const std::string& out) {
  std::vector<std::string> names = kCifarTrain;
  names.push_back(kCifarTest);
  std::map<std::string, std::string> files;
  std::string where;
  if (fs::is_directory(raw)) {
    fs::path dir(raw);
    if (!fs::exists(dir / names[0]) && fs::exists(dir / "cifar-10-batches-bin" / names[0]))
      dir /= "cifar-10-batches-bin";
    for (const auto& n : names) {
      SCORCH_CHECK(fs::exists(dir / n), "CIFAR-10: '{}' not found (expected data_batch_1..5.bin and test_batch.bin)",
                   (dir / n).string());
      files[n] = read_all((dir / n).string());
    }
    where = dir.string() + "/";
  } else {
    SCORCH_CHECK(fs::exists(raw), "CIFAR-10: '{}' does not exist (give the folder or cifar-10-binary.tar.gz)", raw);
    files = read_tar_members(raw, names);
    for (const auto& n : names)
      SCORCH_CHECK(files.count(n), "CIFAR-10: '{}' has no member {} (is it cifar-10-binary.tar.gz?)", raw, n);
    where = raw + ":";
  }
  std::vector<torch::Tensor> imgs, labs;
  for (const auto& n : kCifarTrain) {
    auto [x, y] = decode_cifar10_batch(files[n], where + n);
    imgs.push_back(x);
    labs.push_back(y);
  }
  auto [test_x, test_y] = decode_cifar10_batch(files[kCifarTest], where + kCifarTest);
  auto [train_path, test_path] = cifar_out_paths(out);
  if (!fs::path(train_path).parent_path().empty()) fs::create_directories(fs::path(train_path).parent_path());
  write_images(train_path, torch::cat(imgs), torch::cat(labs));
  write_images(test_path, test_x, test_y);
  return {train_path, test_path};
}

namespace {

// A decoded image, RGB interleaved (grey is promoted by stb).
struct RgbImage {
  std::unique_ptr<stbi_uc, void (*)(void*)> px{nullptr, stbi_image_free};
  int w = 0, h = 0;
};

RgbImage decode_rgb(const std::string& path) {
  RgbImage img;
  int c = 0;
  img.px.reset(stbi_load(path.c_str(), &img.w, &img.h, &c, 3));
  SCORCH_CHECK(img.px != nullptr, "cannot decode image '{}': {}", path, stbi_failure_reason());
  return img;
}

// Centre crop to a square, then resize to R x R: uint8 [R,R,3].
torch::Tensor crop_resize(const RgbImage& img, int64_t resolution, const std::string& path) {
  const int w = img.w, h = img.h;
  const int side = std::min(w, h);
  const int x0 = (w - side) / 2, y0 = (h - side) / 2;
  const int R = static_cast<int>(resolution);
  auto out = torch::empty({resolution, resolution, 3}, torch::kUInt8);
  const stbi_uc* crop = img.px.get() + (static_cast<size_t>(y0) * w + x0) * 3;
  if (side == R) {
    for (int r = 0; r < R; ++r)
      std::memcpy(out.data_ptr<uint8_t>() + static_cast<size_t>(r) * R * 3, crop + static_cast<size_t>(r) * w * 3,
                  static_cast<size_t>(R) * 3);
  } else {
    SCORCH_CHECK(stbir_resize_uint8(crop, side, side, w * 3, out.data_ptr<uint8_t>(), R, R, R * 3, 3) == 1,
                 "cannot resize image '{}' ({}x{}) to {}x{}", path, w, h, R, R);
  }
  return out;
}

}  // namespace

torch::Tensor load_image_square(const std::string& path, int64_t resolution) {
  return crop_resize(decode_rgb(path), resolution, path);
}

int64_t prepare_image_folder(const std::string& dir, int64_t resolution, const std::string& out,
                             dist::Communicator& comm) {
  SCORCH_CHECK(fs::is_directory(dir), "prepare images: '{}' is not a folder", dir);
  SCORCH_CHECK(resolution >= 1, "prepare images: --resolution must be positive (got {})", resolution);
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  SCORCH_CHECK(!files.empty(), "prepare images: no .png/.jpg/.jpeg files under '{}'", dir);
  const int64_t n = static_cast<int64_t>(files.size());
  int w0 = 0, h0 = 0, c0 = 0;
  SCORCH_CHECK(stbi_info(files[0].c_str(), &w0, &h0, &c0) == 1, "cannot decode image '{}': {}", files[0],
               stbi_failure_reason());
  if (comm.rank() == 0)
    spdlog::info("prepare images: {} files under {} ({}x{}), centre crop + resize to {}x{}, {} ranks", n, dir, w0, h0,
                 resolution, resolution, comm.size());

  const int64_t block = 512;
  torch::Tensor all;
  if (comm.rank() == 0) all = torch::empty({n, resolution, resolution, 3}, torch::kUInt8);
  Progress progress("prepare images", n);
  for (int64_t start = 0; start < n; start += block) {
    const int64_t len = std::min(block, n - start);
    auto mine = dist::shard_range(len, comm.rank(), comm.size());
    auto part = torch::empty({mine.size(), resolution, resolution, 3}, torch::kUInt8);
    for (int64_t i = mine.begin; i < mine.end; ++i) {
      const auto& f = files[static_cast<size_t>(start + i)];
      auto img = decode_rgb(f);  // one read per file: the size check uses the decoded header
      SCORCH_CHECK(img.w == w0 && img.h == h0, "image '{}' is {}x{}, but '{}' is {}x{}: a folder must hold one size",
                   f, img.w, img.h, files[0], w0, h0);
      part[i - mine.begin].copy_(crop_resize(img, resolution, f));
    }
    auto gathered = comm.gather_rows(part, 0);
    if (comm.rank() == 0) {
      all.narrow(0, start, len).copy_(gathered);
      progress.tick(start + len);
    }
  }
  if (comm.rank() == 0) write_images(out, all, torch::Tensor());
  comm.barrier();
  return n;
}

}  // namespace scorch::data
