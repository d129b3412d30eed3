// Data: the IDX reader on the real Fashion-MNIST files (counts, shapes, labels), rejection
// of truncated files and wrong magic numbers, and the HDF5 dataset schema round trip.
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "common.h"
#include "scorch/data/dataset.h"
#include "scorch/data/idx.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/files.h"
#include "scorch/io/hdf5.h"
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
  for (const auto& e : fs::directory_iterator(d.path()))
    BOOST_TEST(!io::is_temp_name(e.path().filename().string()), e.path());
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
  auto msg = error_of([&] { data::check_matches(data::inspect(d / "a.h5"), c); });
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

// Defect 9: a file's claimed shape is checked before anything is read. A 1.4 kB file that
// claims 2e6 chunked rows never written, one claiming 1e12 rows, and a virtual dataset whose
// source is missing are refused naming the file (and nothing close to their size is allocated).
BOOST_AUTO_TEST_CASE(claimed_shapes_are_checked_before_reading) {
  test::TempDir d("claims");
  auto make = [&](const std::string& path, std::vector<hsize_t> dims, bool write_rows) {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<hsize_t> maxdims(dims.size(), H5S_UNLIMITED);
    hid_t sp = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data());
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    std::vector<hsize_t> chunk = dims;
    chunk[0] = 64;
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
    hid_t ds = H5Dcreate2(f, "images", H5T_NATIVE_UINT8, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (write_rows) {
      std::vector<uint8_t> rows(64 * 28 * 28, 7);
      hsize_t off[4] = {0, 0, 0, 0}, cnt[4] = {64, 28, 28, 1};
      hid_t fs_ = H5Dget_space(ds);
      H5Sselect_hyperslab(fs_, H5S_SELECT_SET, off, nullptr, cnt, nullptr);
      hid_t ms = H5Screate_simple(4, cnt, nullptr);
      H5Dwrite(ds, H5T_NATIVE_UINT8, ms, fs_, H5P_DEFAULT, rows.data());
      H5Sclose(ms);
      H5Sclose(fs_);
    }
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Fclose(f);
  };
  make(d / "unwritten.h5", {2000000, 28, 28, 1}, /*write_rows=*/true);
  BOOST_TEST(fs::file_size(d / "unwritten.h5") < 100000u);
  auto msg = error_of([&] { data::load(d / "unwritten.h5"); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(d / "unwritten.h5") != std::string::npos);
  BOOST_TEST(msg.find("chunks were ever written") != std::string::npos);
  make(d / "huge.h5", {1000000000000ull, 28, 28, 1}, false);
  msg = error_of([&] { data::load(d / "huge.h5"); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(d / "huge.h5") != std::string::npos);
  BOOST_TEST(msg.find("GB in memory") != std::string::npos);
  // A virtual dataset mapping a source file that is not there.
  {
    hid_t f = H5Fcreate((d / "virtual.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {100, 28, 28, 1};
    hid_t vsp = H5Screate_simple(4, dims, nullptr);
    hid_t src = H5Screate_simple(4, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_virtual(dcpl, vsp, "gone.h5", "images", src);
    hid_t ds = H5Dcreate2(f, "images", H5T_NATIVE_UINT8, vsp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    BOOST_REQUIRE(ds >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(src);
    H5Sclose(vsp);
    H5Fclose(f);
  }
  msg = error_of([&] { data::load(d / "virtual.h5"); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("gone.h5") != std::string::npos);
  BOOST_TEST(msg.find(d / "virtual.h5") != std::string::npos);
  // The same dataset fully written loads.
  make(d / "fine.h5", {64, 28, 28, 1}, true);
  BOOST_TEST(data::load(d / "fine.h5").size() == 64);
}

BOOST_AUTO_TEST_SUITE_END()
