// Dataset converters on files written here in the real formats: CIFAR-10 binary batches
// (as a folder and as a tar.gz made by the system's tar) and folders of PNG/JPEG images;
// wrong record sizes, bad labels, unreadable and mixed-size images are errors naming the
// file, and nothing is written then.
#include <filesystem>

#include "common.h"
#include "scorch/data/converters.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/communicator.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION  // the test writes real PNG/JPEG files
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

using namespace scorch;
using scorch::test::error_of;
namespace fs = std::filesystem;

namespace {

uint8_t cifar_pixel(int64_t batch, int64_t r, int64_t c, int64_t y, int64_t x) {
  return static_cast<uint8_t>((batch * 31 + r * 7 + c * 50 + y * 3 + x) % 256);
}

// A CIFAR-10 batch file of `n` records: label, then the R, G and B planes, row-major.
std::string cifar_batch(int64_t batch, int64_t n) {
  std::string s;
  for (int64_t r = 0; r < n; ++r) {
    s.push_back(static_cast<char>((batch + r) % 10));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) s.push_back(static_cast<char>(cifar_pixel(batch, r, c, y, x)));
  }
  return s;
}

void write_cifar_folder(const std::string& dir) {
  fs::create_directories(dir);
  for (int b = 1; b <= 5; ++b) test::write_file(dir + "/data_batch_" + std::to_string(b) + ".bin", cifar_batch(b, 3));
  test::write_file(dir + "/test_batch.bin", cifar_batch(6, 4));
}

void check_cifar(const std::string& train, const std::string& test_path) {
  auto tr = data::load(train);
  auto te = data::load(test_path);
  BOOST_REQUIRE(tr.images.sizes() == torch::IntArrayRef({15, 32, 32, 3}));
  BOOST_REQUIRE(te.images.sizes() == torch::IntArrayRef({4, 32, 32, 3}));
  for (int64_t b = 1; b <= 5; ++b)
    for (int64_t r = 0; r < 3; ++r) {
      const int64_t i = (b - 1) * 3 + r;
      BOOST_TEST(tr.labels[i].item<int64_t>() == (b + r) % 10);
      for (auto [c, y, x] : {std::array<int64_t, 3>{0, 0, 0}, {1, 5, 17}, {2, 31, 30}, {0, 12, 31}})
        BOOST_TEST(tr.images[i][y][x][c].item<int>() == cifar_pixel(b, r, c, y, x));
    }
  BOOST_TEST(te.labels[3].item<int64_t>() == 9);
  BOOST_TEST(te.images[2][7][9][1].item<int>() == cifar_pixel(6, 2, 1, 7, 9));
}

// A w x h RGB image: a ramp (linear, no wrap-around) distinct per image and channel.
std::vector<uint8_t> pattern(int w, int h, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) px[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>(seed * 4 + x * 3 + y * 2 + c * 20);
  return px;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(converters)

BOOST_AUTO_TEST_CASE(cifar10_folder_and_tarball) {
  test::TempDir d("cifar");
  write_cifar_folder(d / "cifar-10-batches-bin");
  auto paths = data::prepare_cifar10(d.path(), d / "out");  // finds cifar-10-batches-bin/ inside
  BOOST_TEST(paths[0] == d / "out/cifar10_train.h5");
  check_cifar(paths[0], paths[1]);
  BOOST_REQUIRE(std::system(("tar czf " + d / "cifar-10-binary.tar.gz" + " -C " + d.path() + " cifar-10-batches-bin").c_str()) == 0);
  paths = data::prepare_cifar10(d / "cifar-10-binary.tar.gz", d / "c10.h5");
  BOOST_TEST(paths[0] == d / "c10.h5");
  BOOST_TEST(paths[1] == d / "c10_test.h5");
  check_cifar(paths[0], paths[1]);
}

BOOST_AUTO_TEST_CASE(cifar10_bad_input_names_the_file_and_writes_nothing) {
  test::TempDir d("cifar_bad");
  write_cifar_folder(d / "raw");
  test::write_file(d / "raw/data_batch_3.bin", cifar_batch(3, 2) + "x");
  auto msg = error_of([&] { data::prepare_cifar10(d / "raw", d / "out"); });
  BOOST_TEST(msg.find("data_batch_3.bin") != std::string::npos, msg);
  BOOST_TEST(msg.find("3073") != std::string::npos, msg);
  BOOST_TEST(!fs::exists(d / "out/cifar10_train.h5"));

  auto bad = cifar_batch(3, 3);
  bad[2 * 3073] = 12;  // record 2's label
  test::write_file(d / "raw/data_batch_3.bin", bad);
  msg = error_of([&] { data::prepare_cifar10(d / "raw", d / "out"); });
  BOOST_TEST(msg.find("data_batch_3.bin: record 2 has label 12") != std::string::npos, msg);

  fs::remove(d / "raw/test_batch.bin");
  msg = error_of([&] { data::prepare_cifar10(d / "raw", d / "out"); });
  BOOST_TEST(msg.find("test_batch.bin") != std::string::npos, msg);
  BOOST_TEST(!fs::exists(d / "out/cifar10_train.h5"));
  BOOST_TEST(!fs::exists(d / "out"));

  test::write_file(d / "not_a_tar.tar.gz", "hello");
  msg = error_of([&] { data::prepare_cifar10(d / "not_a_tar.tar.gz", d / "out"); });
  BOOST_TEST(msg.find("not_a_tar.tar.gz") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(image_folder_crop_resize_and_errors) {
  test::TempDir d("images");
  fs::create_directories(d / "imgs/sub");
  const int w = 40, h = 30;
  for (int i = 0; i < 4; ++i) {
    auto px = pattern(w, h, i);
    const std::string p = i == 3 ? d / "imgs/sub/c.png" : d / ("imgs/" + std::string(1, static_cast<char>('a' + i)) + ".png");
    BOOST_REQUIRE(stbi_write_png(p.c_str(), w, h, 3, px.data(), w * 3) != 0);
  }
  auto px = pattern(w, h, 9);
  BOOST_REQUIRE(stbi_write_jpg((d / "imgs/z.jpg").c_str(), w, h, 3, px.data(), 95) != 0);
  auto comm = dist::mpi_self();

  // Resolution = the short side: an exact centre crop (x from 5 to 35).
  BOOST_TEST(data::prepare_image_folder(d / "imgs", 30, d / "crop.h5", *comm) == 5);
  auto ds = data::load(d / "crop.h5");
  BOOST_REQUIRE(ds.images.sizes() == torch::IntArrayRef({5, 30, 30, 3}));
  auto p0 = pattern(w, h, 0), p3 = pattern(w, h, 3);
  bool exact = true;
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 30; ++x)
      for (int c = 0; c < 3; ++c) {
        exact &= ds.images[0][y][x][c].item<int>() == p0[static_cast<size_t>((y * w + x + 5) * 3 + c)];
      }
  BOOST_TEST(exact);
  BOOST_TEST(ds.images[3][4][6][1].item<int>() == p3[static_cast<size_t>((4 * w + 6 + 5) * 3 + 1)]);  // imgs/sub/c.png sorts 4th
  // The JPEG is lossy: close, not equal.
  auto pz = pattern(w, h, 9);
  auto zt = torch::from_blob(pz.data(), {h, w, 3}, torch::kUInt8).narrow(1, 5, 30).to(torch::kFloat32);
  BOOST_TEST((ds.images[4].to(torch::kFloat32) - zt).abs().mean().item<double>() < 6.0);

  // Down to 15x15: each output pixel is a smooth average of its 2x2 neighbourhood.
  data::prepare_image_folder(d / "imgs", 15, d / "small.h5", *comm);
  auto small = data::load(d / "small.h5").images[0].to(torch::kFloat32);
  auto ref = torch::from_blob(p0.data(), {h, w, 3}, torch::kUInt8).narrow(1, 5, 30).to(torch::kFloat32);
  auto box = torch::avg_pool2d(ref.permute({2, 0, 1}).unsqueeze(0), 2, 2).squeeze(0).permute({1, 2, 0});
  auto inner = [](const torch::Tensor& t) { return t.narrow(0, 2, 11).narrow(1, 2, 11); };
  BOOST_TEST((inner(small) - inner(box)).abs().max().item<double>() < 2.0);

  // A differently sized image, then an undecodable one: named, and nothing is written.
  auto odd = pattern(20, 20, 1);
  BOOST_REQUIRE(stbi_write_png((d / "imgs/m.png").c_str(), 20, 20, 3, odd.data(), 60) != 0);
  auto msg = error_of([&] { data::prepare_image_folder(d / "imgs", 16, d / "bad.h5", *comm); });
  BOOST_TEST(msg.find("m.png") != std::string::npos, msg);
  BOOST_TEST(msg.find("20x20") != std::string::npos, msg);
  fs::remove(d / "imgs/m.png");
  test::write_file(d / "imgs/broken.png", "not a png");
  msg = error_of([&] { data::prepare_image_folder(d / "imgs", 16, d / "bad.h5", *comm); });
  BOOST_TEST(msg.find("broken.png") != std::string::npos, msg);
  BOOST_TEST(!fs::exists(d / "bad.h5"));
  BOOST_TEST(!fs::exists(d / "bad.h5.tmp"));
}

BOOST_AUTO_TEST_SUITE_END()
