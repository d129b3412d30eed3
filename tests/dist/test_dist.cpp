// Multi-rank tests, run under `mpiexec -np 2`. Collectives are checked on inputs whose
// reduced values are exactly predictable, each rank counts its errors and the counts are
// all-reduced (a failure on any rank fails every rank). Training on 2 ranks with B/2 each
// must match training on 1 rank with batch B.
#include <ATen/CPUGeneratorImpl.h>

#include "common.h"
#include "scorch/dist/communicator.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/checkpoint.h"
#include "scorch/train/trainer.h"

using namespace scorch;

namespace {

// Sum of error counts over ranks.
int64_t global_errors(dist::Communicator& comm, int64_t local) {
  auto t = torch::tensor({local}, torch::kInt64);
  comm.allreduce_sum(t);
  return t.item<int64_t>();
}

// A folder shared by all ranks (rank 0 names it, broadcast).
std::string shared_dir(dist::Communicator& comm, const std::string& tag) {
  std::string path;
  if (comm.rank() == 0) {
    path = (std::filesystem::temp_directory_path() / ("scorch_mpi_" + tag + "_" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  auto len = torch::tensor({static_cast<int64_t>(path.size())}, torch::kInt64);
  comm.broadcast(len, 0);
  auto buf = torch::zeros({len.item<int64_t>()}, torch::kUInt8);
  if (comm.rank() == 0) std::memcpy(buf.data_ptr(), path.data(), path.size());
  comm.broadcast(buf, 0);
  return std::string(static_cast<char*>(buf.data_ptr()), buf.numel());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(distributed)

BOOST_AUTO_TEST_CASE(world_has_two_ranks) {
  auto comm = dist::mpi_world();
  BOOST_REQUIRE_MESSAGE(comm->size() == 2, "run this suite with mpiexec -np 2 (got " << comm->size() << ")");
}

BOOST_AUTO_TEST_CASE(allreduce_is_exact) {
  auto comm = dist::mpi_world();
  const int r = comm->rank(), W = comm->size();
  int64_t errors = 0;
  // Integers in float32 up to 2^24 add exactly: rank r contributes (r+1) * i.
  auto f = torch::arange(1000, torch::kFloat32) * static_cast<float>(r + 1);
  comm->allreduce_sum(f);
  auto expect = torch::arange(1000, torch::kFloat32) * static_cast<float>(W * (W + 1) / 2);
  errors += (f != expect).sum().item<int64_t>();
  auto d = torch::full({7}, std::ldexp(1.0, -r - 1), torch::kFloat64);  // 1/2 + 1/4 ...
  comm->allreduce_sum(d);
  errors += (d != (1.0 - std::ldexp(1.0, -W))).sum().item<int64_t>();
  BOOST_TEST(global_errors(*comm, errors) == 0);
}

BOOST_AUTO_TEST_CASE(broadcast_and_gather_rows) {
  auto comm = dist::mpi_world();
  const int r = comm->rank();
  auto t = torch::full({3, 2}, static_cast<float>(r + 10));
  comm->broadcast(t, 0);
  int64_t errors = (t != 10.0f).sum().item<int64_t>();
  // Unequal shards: rank r sends r+1 rows of value r.
  auto rows = torch::full({r + 1, 2}, static_cast<int64_t>(r), torch::kInt64);
  auto all = comm->gather_rows(rows, 0);
  if (r == 0) {
    BOOST_TEST(all.size(0) == 3);
    errors += (all[0] != 0).sum().item<int64_t>() + (all.slice(0, 1, 3) != 1).sum().item<int64_t>();
  } else {
    BOOST_TEST(!all.defined());
  }
  BOOST_TEST(global_errors(*comm, errors) == 0);
}

BOOST_AUTO_TEST_CASE(sharding_covers_everything_once) {
  for (int W : {1, 2, 3, 7}) {
    int64_t covered = 0, prev_end = 0;
    for (int r = 0; r < W; ++r) {
      auto s = dist::shard_range(10, r, W);
      BOOST_TEST(s.begin == prev_end);
      BOOST_TEST(s.size() >= 10 / W);
      prev_end = s.end;
      covered += s.size();
    }
    BOOST_TEST(covered == 10);
  }
  auto msg = test::error_of([] { dist::batch_share(7, 0, 2); });
  BOOST_TEST(msg.find("training.batch_size = 7") != std::string::npos);
}

// 2 ranks x B/2 == 1 rank x B after k steps (float tolerance: only the summation order of
// the gradient differs), for the image U-Net and the point MLP.
BOOST_AUTO_TEST_CASE(two_ranks_equal_one_rank_with_the_global_batch) {
  auto world = dist::mpi_world();
  auto self = dist::mpi_self();
  std::string dir = shared_dir(*world, "equiv");
  for (const std::string net : {"unet", "mlp", "ncsnpp"}) {
    const bool images = net != "mlp";
    Config cfg;
    if (world->rank() == 0) {
      cfg = images ? test::tiny_image_config(dir + "/img.h5", 64) : test::tiny_point_config(dir + "/pts.h5", 256);
    }
    world->barrier();
    if (world->rank() != 0) {
      cfg = images ? test::tiny_image_config(dir + "/img_r1.h5", 64) : test::tiny_point_config(dir + "/pts_r1.h5", 256);
      cfg.data.path = images ? dir + "/img.h5" : dir + "/pts.h5";  // the very same file as rank 0
    }
    cfg.model.dropout = 0.0;  // dropout masks are per rank by design
    if (net == "ncsnpp") {    // NCSN++ with FIR resampling and both pyramids
      cfg.model.name = "ncsnpp";
      cfg.model.fir = true;
      cfg.model.progressive = "output_skip";
      cfg.model.progressive_input = "residual";
      cfg.model.embedding_type = "fourier";
      cfg.model.init_scale = 0.1;
    }
    const int64_t k = 5;
    train::Trainer two(cfg, *world, dir + "/two");
    two.run(k);
    train::Trainer one(cfg, *self, dir + "/one_" + std::to_string(world->rank()));
    one.run(k);
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < two.trainable().size(); ++i) {
      auto a = two.trainable()[i].second, b = one.trainable()[i].second;
      max_diff = std::max(max_diff, (a - b).abs().max().item<double>());
      max_abs = std::max(max_abs, b.abs().max().item<double>());
    }
    BOOST_TEST_INFO(net << ": max |2 ranks - 1 rank| = " << max_diff << " (max |w| " << max_abs << ")");
    BOOST_TEST(max_diff < 1e-4);
    // Sanity: training moved the weights far more than that tolerance.
    train::Trainer init(cfg, *self, dir + "/init");
    double moved = 0;
    for (size_t i = 0; i < init.trainable().size(); ++i) {
      moved = std::max(moved, (init.trainable()[i].second - one.trainable()[i].second).abs().max().item<double>());
    }
    BOOST_TEST(moved > 1e-3);
    // Every rank of the 2-rank job holds exactly the same weights.
    int64_t errors = 0;
    for (const auto& [name, p] : two.trainable()) {
      auto mine = p.detach().clone();
      auto root = mine.clone();
      world->broadcast(root, 0);
      errors += !torch::equal(mine, root);
    }
    BOOST_TEST(global_errors(*world, errors) == 0);
  }
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(checkpoint_holds_every_ranks_rng_and_resumes_on_two_ranks) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "ckpt");
  Config cfg = test::tiny_image_config(dir + "/img_" + std::to_string(world->rank()) + ".h5", 32);
  cfg.model.dropout = 0.2;
  io::TensorMap straight;
  {
    train::Trainer a(cfg, *world, dir + "/straight");
    a.run(4);
    for (const auto& [n, p] : a.trainable()) straight[n] = p.detach().clone();
  }
  {
    train::Trainer b(cfg, *world, dir + "/resumed");
    b.run(2);
  }
  world->barrier();
  auto st = io::load_checkpoint(io::latest_checkpoint(dir + "/resumed"));
  BOOST_TEST(st.world_size == 2);
  BOOST_TEST(st.rng.size(0) == 2);
  BOOST_TEST(!torch::equal(st.rng[0], st.rng[1]));  // distinct dropout streams per rank
  train::Trainer c(cfg, *world, dir + "/resumed");
  c.resume_latest();
  c.run(4);
  io::TensorMap resumed;
  for (const auto& [n, p] : c.trainable()) resumed[n] = p.detach().clone();
  BOOST_TEST(test::maps_equal(resumed, straight));
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
