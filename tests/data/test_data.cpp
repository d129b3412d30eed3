// Data: the IDX reader on the real Fashion-MNIST files (counts, shapes, labels), rejection
// of truncated files and wrong magic numbers, and the HDF5 dataset schema round trip.
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "common.h"
#include "scorch/data/dataset.h"
#include "scorch/data/idx.h"
#include "scorch/data/image_grid.h"
#include "test_paths.h"

using namespace scorch;
using scorch::test::error_of;
namespace fs = std::filesystem;

namespace {
std::string fm(const std::string& name) { return std::string(SCORCH_FASHION_MNIST_DIR) + "/" + name; }

void write_idx(const std::string& path, uint32_t magic, std::vector<uint32_t> dims, size_t payload) {
  std::ofstream out(path, std::ios::binary);
  auto be = [&](uint32_t v) {
    unsigned char b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    out.write(reinterpret_cast<char*>(b), 4);
  };
  be(magic);
  for (auto d : dims) be(d);
  std::string data(payload, '\x07');
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}
}  // namespace

BOOST_AUTO_TEST_SUITE(datasets)

BOOST_AUTO_TEST_CASE(fashion_mnist_idx_counts_and_shapes) {
  auto img = data::read_idx(fm("train-images-idx3-ubyte.gz"), 0x803);
  BOOST_TEST(img.dims == (std::vector<int64_t>{60000, 28, 28}));
  BOOST_TEST(img.bytes.size() == 60000u * 28 * 28);
  auto lab = data::read_idx(fm("train-labels-idx1-ubyte.gz"), 0x801);
  BOOST_TEST(lab.dims == (std::vector<int64_t>{60000}));
  std::vector<int64_t> hist(10, 0);
  for (auto l : lab.bytes) {
    BOOST_REQUIRE(l < 10);
    ++hist[l];
  }
  for (auto h : hist) BOOST_TEST(h == 6000);  // Fashion-MNIST is balanced: 6000 per class
  BOOST_TEST(int(lab.bytes[0]) == 9);         // the first training item is an ankle boot
  auto test_img = data::read_idx(fm("t10k-images-idx3-ubyte.gz"), 0x803);
  BOOST_TEST(test_img.dims == (std::vector<int64_t>{10000, 28, 28}));
}

BOOST_AUTO_TEST_CASE(prepare_writes_the_schema) {
  test::TempDir d("fm");
  auto paths = data::prepare_fashion_mnist(SCORCH_FASHION_MNIST_DIR, d.path());
  BOOST_REQUIRE(paths.size() == 2u);
  auto train = data::load(paths[0]);
  BOOST_TEST(train.images.sizes() == (std::vector<int64_t>{60000, 28, 28, 1}));
  BOOST_TEST(train.labels.sizes() == (std::vector<int64_t>{60000}));
  auto lab = data::read_idx(fm("train-labels-idx1-ubyte.gz"), 0x801);
  auto img = data::read_idx(fm("train-images-idx3-ubyte.gz"), 0x803);
  BOOST_TEST(train.labels[12345].item<int64_t>() == int64_t(lab.bytes[12345]));
  BOOST_TEST(train.images[777][13][14][0].item<uint8_t>() == img.bytes[777 * 784 + 13 * 28 + 14]);
  auto test = data::load(paths[1], /*limit=*/100);
  BOOST_TEST(test.size() == 100);
  BOOST_TEST(!fs::exists(paths[0] + ".tmp"));
}

BOOST_AUTO_TEST_CASE(truncated_gzip_is_rejected) {
  test::TempDir d("idx");
  auto src = fm("t10k-images-idx3-ubyte.gz");
  auto size = fs::file_size(src);
  for (double frac : {0.0005, 0.5, 0.999}) {
    auto dst = d / "cut.gz";
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing);
    fs::resize_file(dst, static_cast<uintmax_t>(static_cast<double>(size) * frac));
    auto msg = error_of([&] { data::read_idx(dst, 0x803); });
    BOOST_TEST_INFO(frac << ": " << msg);
    BOOST_TEST(msg.find(dst) != std::string::npos);
    BOOST_TEST((msg.find("truncated") != std::string::npos || msg.find("corrupted") != std::string::npos));
  }
}

BOOST_AUTO_TEST_CASE(truncated_plain_idx_is_rejected) {
  test::TempDir d("idx");
  write_idx(d / "short.idx", 0x803, {10, 28, 28}, 5 * 784);
  auto msg = error_of([&] { data::read_idx(d / "short.idx", 0x803); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("truncated") != std::string::npos);
  BOOST_TEST(msg.find("short.idx") != std::string::npos);
  write_idx(d / "ok.idx", 0x803, {10, 28, 28}, 10 * 784);
  BOOST_TEST(data::read_idx(d / "ok.idx", 0x803).dims[0] == 10);
  write_idx(d / "long.idx", 0x803, {10, 28, 28}, 10 * 784 + 3);
  BOOST_TEST(error_of([&] { data::read_idx(d / "long.idx", 0x803); }).find("trailing") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(wrong_magic_is_rejected) {
  test::TempDir d("idx");
  auto msg = error_of([&] { data::read_idx(fm("train-labels-idx1-ubyte.gz"), 0x803); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("wrong magic number 0x00000801") != std::string::npos);
  write_idx(d / "bad.idx", 0x12345678, {}, 0);
  msg = error_of([&] { data::read_idx(d / "bad.idx", 0x801); });
  BOOST_TEST(msg.find("bad.idx") != std::string::npos);
  BOOST_TEST(msg.find("wrong magic") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(dataset_schema_round_trip_and_mismatch) {
  test::TempDir d("ds");
  auto imgs = torch::randint(0, 256, {5, 6, 6, 3}, torch::kInt64).to(torch::kUInt8);
  data::write_images(d / "a.h5", imgs, torch::arange(5));
  auto ds = data::load(d / "a.h5");
  BOOST_TEST(torch::equal(ds.images, imgs));
  BOOST_TEST(torch::equal(ds.labels, torch::arange(5)));
  Config c;
  c.data.image_size = 6;
  c.data.num_channels = 1;
  auto msg = error_of([&] { data::check_matches(ds, c); });
  BOOST_TEST(msg.find("data.num_channels") != std::string::npos);
  BOOST_TEST(msg.find("a.h5") != std::string::npos);
  test::write_file(d / "not.h5", "hello");
  msg = error_of([&] { data::load(d / "not.h5"); });
  BOOST_TEST(msg.find("not an HDF5 file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(scalers_and_png_grid) {
  auto u8 = torch::tensor({0, 128, 255}, torch::kUInt8).reshape({1, 1, 3, 1});
  auto x = data::images_to_unit(u8);
  BOOST_TEST(x.sizes() == (std::vector<int64_t>{1, 1, 1, 3}));
  BOOST_TEST(data::scale(x, true)[0][0][0][0].item<float>() == -1.0f);
  BOOST_TEST(torch::equal(data::unit_to_images(data::unscale(data::scale(x, true), true)), u8));
  auto deq = data::images_to_unit(u8, torch::full({1, 1, 1, 3}, 0.5));
  BOOST_TEST(deq[0][0][0][2].item<float>() == (0.5f + 255.0f) / 256.0f);
  test::TempDir d("png");
  data::write_png_grid(d / "g.png", torch::zeros({5, 4, 4, 1}, torch::kUInt8), 2);
  auto head = test::read_file(d / "g.png").substr(1, 3);
  BOOST_TEST(head == "PNG");
}

BOOST_AUTO_TEST_SUITE_END()
