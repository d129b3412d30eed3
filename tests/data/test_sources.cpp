// The data sources of data/source.h in one process: every source hands out the same bytes,
// so training batches are bitwise equal whatever the source, with or without the prefetch
// thread; streaming keeps memory flat in the data set's size; a damaged or truncated
// streamed file fails naming the file and rows (never a zero batch), also through the
// prefetch thread. The multi-rank cases (node_shared holding one copy per node, batches at
// several world sizes, stream resume) are in dist/test_dist.cpp.
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <chrono>
#include <thread>

#include "common.h"
#include "scorch/core/random.h"
#include "scorch/data/source.h"
#include "scorch/io/hdf5.h"
#include "scorch/dist/communicator.h"
#include "scorch/dist/sharding.h"
#include "scorch/train/batches.h"

using namespace scorch;
using scorch::test::error_of;
namespace fs = std::filesystem;

namespace {

// Images whose row r starts with the text "ROW%05d" (found again in the file's bytes) and is
// otherwise a function of (r, byte).
torch::Tensor marked_images(int64_t n, int64_t hw, int64_t c) {
  auto x = (torch::arange(n, torch::kInt64).reshape({n, 1}) * 131 +
            torch::arange(hw * hw * c, torch::kInt64).reshape({1, -1}) * 7) %
           251;
  auto u8 = x.to(torch::kUInt8).contiguous();
  for (int64_t r = 0; r < n; ++r) {
    auto tag = fmt::format("ROW{:05d}", r);
    std::memcpy(u8.data_ptr<uint8_t>() + r * hw * hw * c, tag.data(), tag.size());
  }
  return u8.reshape({n, hw, hw, c});
}

int64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  int64_t kb = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return kb;
}

Config image_cfg(const std::string& path) {
  Config c;
  c.model.name = "unet";
  c.data.path = path;
  c.data.image_size = 12;
  c.data.num_channels = 3;
  c.data.uniform_dequantization = true;
  c.data.random_flip = true;
  c.data.centered = true;
  c.model.num_classes = 10;
  c.training.label_dropout = 0.2;
  c.training.batch_size = 24;
  return c;
}

bool batches_equal(const train::HostBatch& a, const train::HostBatch& b) {
  auto same = [](const torch::Tensor& x, const torch::Tensor& y) {
    return x.defined() == y.defined() && (!x.defined() || torch::equal(x, y));
  };
  return same(a.images, b.images) && same(a.x0, b.x0) && same(a.points, b.points) && same(a.t, b.t) &&
         same(a.z, b.z) && same(a.flip, b.flip) && same(a.deq, b.deq) && same(a.labels, b.labels);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sources)

BOOST_AUTO_TEST_CASE(every_source_gives_bitwise_equal_batches_with_and_without_prefetch) {
  test::TempDir d("sources_eq");
  const std::string path = d / "img.h5";
  data::write_images(path, marked_images(200, 12, 3), torch::arange(200, torch::kInt64) % 10);
  Config cfg = image_cfg(path);
  validate(cfg);
  auto world = dist::mpi_world();  // a world of one here
  auto ref_src = data::in_memory(data::load(path));
  const dist::Range all{0, cfg.training.batch_size};
  train::BatchMaker ref(cfg, *ref_src, all, false, 1.0, 1000);
  for (const std::string kind : {"memory", "node_shared", "stream", "auto"}) {
    auto src = data::open_source(path, {kind, 1.0, 0}, world.get());
    BOOST_TEST_MESSAGE(kind << ": " << src->describe());
    if (kind == "auto") BOOST_TEST(src->kind() == "memory");  // 86 kB is small
    BOOST_TEST(torch::equal(src->labels(), ref_src->labels()));
    for (bool host : {false, true}) {
      train::BatchMaker mk(cfg, *src, all, false, 1.0, 1000, false, host);
      train::BatchMaker mk_ref(cfg, *ref_src, all, false, 1.0, 1000, false, host);
      train::Prefetcher pf([&](int64_t s) { return mk.make(s); }, 0, 20, 2);
      int64_t bad = 0;
      for (int64_t step = 0; step < 20; ++step) {
        auto want = mk_ref.make(step);
        bad += !batches_equal(mk.make(step), want);
        bad += !batches_equal(pf.take(step), want);
      }
      BOOST_TEST_INFO(kind << (host ? " (finished on the host)" : ""));
      BOOST_TEST(bad == 0);
    }
  }
  // Finishing on the host gives bitwise the network input the device would make.
  train::BatchMaker host(cfg, *ref_src, all, false, 1.0, 1000, false, true);
  auto hb = ref.make(3), hh = host.make(3);
  auto x01 = data::images_to_unit(hb.images, hb.deq);
  x01 = torch::where(hb.flip.reshape({-1, 1, 1, 1}), x01.flip({3}), x01);
  BOOST_TEST(torch::equal(hh.x0, data::scale(x01, true)));
  BOOST_TEST(!hh.images.defined());
  // Rows in any order, with repeats, come back as asked.
  auto src = data::open_source(path, {"stream", 0.0, 0}, world.get());
  auto idx = torch::tensor({5, 199, 5, 0, 77, 76}, torch::kInt64);
  BOOST_TEST(torch::equal(src->gather(idx), ref_src->gather(idx)));
  auto msg = error_of([&] { src->gather(torch::tensor({200}, torch::kInt64)); });
  BOOST_TEST(msg.find("rows 200..200") != std::string::npos);
  // Point data too.
  data::write_points(d / "pts.h5", torch::randn({64, 3}), {});
  auto p_mem = data::open_source(d / "pts.h5", {"memory", 1.0, 0}, world.get());
  auto p_str = data::open_source(d / "pts.h5", {"stream", 1.0, 0}, world.get());
  auto p_shr = data::open_source(d / "pts.h5", {"node_shared", 1.0, 0}, world.get());
  auto pidx = torch::randperm(64, torch::kInt64).slice(0, 0, 17);
  BOOST_TEST(torch::equal(p_mem->gather(pidx), p_str->gather(pidx)));
  BOOST_TEST(torch::equal(p_mem->gather(pidx), p_shr->gather(pidx)));
}

BOOST_AUTO_TEST_CASE(dataset_files_are_chunked_by_rows) {
  test::TempDir d("sources_chunks");
  data::write_images(d / "a.h5", marked_images(40, 64, 3), {});
  data::write_images(d / "b.h5", marked_images(40, 28, 1), {});
  auto f = h5::File::open_read(d / "a.h5");
  BOOST_TEST(h5::chunk_rows(f.id(), "images") == 1);  // 12 KiB rows: one per chunk
  auto g = h5::File::open_read(d / "b.h5");
  BOOST_TEST(h5::chunk_rows(g.id(), "images") == 5);  // 784-byte rows: five per ~4 KiB chunk
}

// A 256x256 RGB file of ~400 MB: streaming random batches from it keeps the process's
// resident memory far below the file's size (the chunk cache is 16 MiB).
BOOST_AUTO_TEST_CASE(streaming_keeps_memory_flat) {
  test::TempDir d("sources_rss");
  const std::string path = d / "big.h5";
  const int64_t n = 2000, row = 256 * 256 * 3;
  {
    auto imgs = marked_images(n, 256, 3);
    data::write_images(path, imgs, {});
  }
  BOOST_TEST(fs::file_size(path) > 390u * 1000 * 1000);
  const int64_t before = rss_bytes();
  auto src = data::open_source(path, {"stream", 16.0, 0});
  auto g = make_generator(torch::Device(torch::kCPU), 11);
  int64_t bad = 0;
  auto out = torch::empty({32, 256, 256, 3}, torch::kUInt8);
  for (int step = 0; step < 40; ++step) {
    auto idx = torch::randint(0, n, {32}, g, torch::kInt64);
    src->gather(idx, out);
    for (int64_t j = 0; j < 32; ++j) {
      auto tag = fmt::format("ROW{:05d}", idx[j].item<int64_t>());
      bad += std::memcmp(out[j].data_ptr<uint8_t>(), tag.data(), tag.size()) != 0;
    }
  }
  const int64_t growth = rss_bytes() - before;
  BOOST_TEST_MESSAGE("streamed 40 x 32 rows of a " << fs::file_size(path) / 1000000 << " MB file: RSS grew by "
                                                    << growth / 1000000 << " MB");
  BOOST_TEST(bad == 0);
  BOOST_TEST(growth < 100 * 1000 * 1000);  // the file is ~393 MB; the rows read ~250 MB
  BOOST_TEST(src->resident_bytes() <= 16 * 1024 * 1024);
  (void)row;
}

BOOST_AUTO_TEST_CASE(damaged_or_truncated_stream_fails_naming_file_and_rows) {
  test::TempDir d("sources_damage");
  const std::string path = d / "img.h5";
  data::write_images(path, marked_images(100, 64, 3), torch::arange(100, torch::kInt64) % 10);
  // Corrupt row 37 in place: the chunk holding it fails its Fletcher-32 checksum.
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(io)), {});
    auto at = bytes.find("ROW00037");
    BOOST_REQUIRE(at != std::string::npos);
    io.seekp(static_cast<std::streamoff>(at + 100));
    io.put(static_cast<char>(bytes[at + 100] ^ 0x5a));
  }
  auto src = data::open_source(path, {"stream", 0.0, 0});
  BOOST_TEST(src->gather(torch::arange(0, 30, torch::kInt64)).size(0) == 30);  // other chunks are fine
  auto msg = error_of([&] { src->gather(torch::tensor({3, 37, 80}, torch::kInt64)); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(path) != std::string::npos);
  BOOST_TEST(msg.find("row 3 and row 80") != std::string::npos);
  BOOST_TEST(msg.find("checksum") != std::string::npos);  // HDF5's own Fletcher-32 verdict
  // Through the prefetch thread the error reaches the training thread as it is.
  Config cfg = image_cfg(path);
  cfg.data.image_size = 64;
  cfg.model.num_classes = 0;
  cfg.training.label_dropout = 0;
  cfg.training.batch_size = 50;
  validate(cfg);
  train::BatchMaker mk(cfg, *src, {0, 50}, false, 1.0, 1000);
  {
    train::Prefetcher pf([&](int64_t s) { return mk.make(s); }, 0, 4, 2);
    int64_t took = 0;
    msg = error_of([&] {
      for (int64_t s = 0; s < 4; ++s, ++took) pf.take(s);
    });
    BOOST_TEST_INFO(msg);
    BOOST_TEST(msg.find(path) != std::string::npos);
    BOOST_TEST(msg.find("checksum") != std::string::npos);
    BOOST_TEST(took < 2);  // rows 0-99 are one epoch of 2 steps: row 37 is in step 0 or 1
  }
  // Truncated under a running job: the next read says so instead of handing back zeros.
  data::write_images(d / "t.h5", marked_images(100, 64, 3), {});
  auto t = data::open_source(d / "t.h5", {"stream", 0.0, 0});
  BOOST_TEST(t->gather(torch::tensor({99}, torch::kInt64)).size(0) == 1);
  fs::resize_file(d / "t.h5", fs::file_size(d / "t.h5") / 2);
  msg = error_of([&] { t->gather(torch::tensor({1, 99}, torch::kInt64)); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(d / "t.h5") != std::string::npos);
  BOOST_TEST(msg.find("shrank") != std::string::npos);
  // Hostile rerun: rewritten in place at the same size (a third of the images inverted): the
  // next read says the file changed, naming it.
  {
    data::write_images(d / "r.h5", marked_images(100, 64, 3), {});
    auto rs = data::open_source(d / "r.h5", {"stream", 0.0, 0});
    BOOST_TEST(rs->gather(torch::tensor({5}, torch::kInt64)).size(0) == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the file system's timestamp granularity
    const auto size = fs::file_size(d / "r.h5");
    {
      std::fstream io(d / "r.h5", std::ios::in | std::ios::out | std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(io)), {});
      auto at = bytes.find("ROW00066");
      BOOST_REQUIRE(at != std::string::npos);
      io.seekp(static_cast<std::streamoff>(at));
      io.write("ROW00067", 8);
    }
    BOOST_REQUIRE(fs::file_size(d / "r.h5") == size);
    msg = error_of([&] { rs->gather(torch::tensor({1, 2}, torch::kInt64)); });
    BOOST_TEST(msg.find(d / "r.h5" + " changed while this run streams it (rewritten in place") != std::string::npos,
               msg);
  }
  // And opened truncated, it is refused by name before any batch.
  t.reset();  // (HDF5 would share the file still open)
  msg = error_of([&] { data::open_source(d / "t.h5", {"stream", 0.0, 0}); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(d / "t.h5") != std::string::npos);
  msg = error_of([&] { data::open_source(path, {"mmap", 0.0, 0}); });
  BOOST_TEST(msg.find("data.source = \"mmap\" is not one of: auto | memory | node_shared | stream") !=
             std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
