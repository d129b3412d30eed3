// Checkpoints: save/load/save is the identity; resuming at k and training to 2k equals
// training straight to 2k bitwise (single thread); truncated or corrupted files are
// reported, set aside and leave the model untouched; a checkpoint of another model is
// refused by name; background and inline writes give the same bytes; /config is checksummed.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "common.h"
#include "scorch/dist/communicator.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/hdf5.h"
#include "scorch/train/trainer.h"

using namespace scorch;
using scorch::test::error_of;
namespace fs = std::filesystem;

namespace {

io::TensorMap params_of(train::Trainer& t) {
  io::TensorMap m;
  for (const auto& p : t.model().named_parameters()) m[p.key()] = p.value().detach().clone();
  return m;
}

// Flips one byte inside the stored bytes of `t` in `path` (found by searching the file).
void corrupt_tensor_bytes(const std::string& path, const torch::Tensor& t) {
  std::string file = test::read_file(path);
  auto c = t.contiguous();
  std::string needle(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel() * c.element_size()));
  auto pos = file.find(needle);
  BOOST_REQUIRE(pos != std::string::npos);
  BOOST_REQUIRE_MESSAGE(file.find(needle, pos + 1) == std::string::npos, "tensor bytes are not unique in the file");
  file[pos + needle.size() / 2] = static_cast<char>(file[pos + needle.size() / 2] ^ 0x5a);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << file;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(checkpoint)

BOOST_AUTO_TEST_CASE(save_load_save_is_identity) {
  test::TempDir d("ck");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  tr.run(3);
  auto a_path = tr.save_checkpoint();
  auto a = io::load_checkpoint(a_path);
  BOOST_TEST(a.step == 3);
  BOOST_TEST(a.rng.size(0) == 1);
  BOOST_TEST(a.adam_steps == 3);
  BOOST_TEST(a.ema_updates == 3);
  BOOST_TEST(!a.params.empty());
  BOOST_TEST(a.ema.size() == a.exp_avg.size());
  io::save_checkpoint(d / "b.h5", a);
  auto b = io::load_checkpoint(d / "b.h5");
  for (auto [x, y] : {std::pair{&a.params, &b.params}, std::pair{&a.ema, &b.ema}, std::pair{&a.exp_avg, &b.exp_avg},
                      std::pair{&a.exp_avg_sq, &b.exp_avg_sq}, std::pair{&a.buffers, &b.buffers}}) {
    BOOST_TEST(test::maps_equal(*x, *y));
  }
  BOOST_TEST(torch::equal(a.rng, b.rng));
  BOOST_TEST(a.config_toml == b.config_toml);
  BOOST_TEST(a.ema_updates == b.ema_updates);
  // What was saved is what the trainer holds.
  BOOST_TEST(test::maps_equal(a.params, params_of(tr)));
  // The resolved config is stored and parses back to the same config.
  Config back;
  apply_toml_string(back, a.config_toml, "ckpt");
  BOOST_TEST(back.model.nf == cfg.model.nf);
  BOOST_TEST(back.data.path == cfg.data.path);
  BOOST_TEST(io::latest_checkpoint(d / "run") == a_path);
}

BOOST_AUTO_TEST_CASE(resume_is_bitwise_identical) {
  test::TempDir d("resume");
  auto cfg = test::tiny_image_config(d / "data.h5", /*n=*/24);  // 3 batches per epoch: crosses epochs
  const int64_t k = 4;
  auto comm = dist::mpi_self();
  io::TensorMap straight_params, straight_ema;
  {
    train::Trainer a(cfg, *comm, d / "straight");
    a.run(2 * k);
    straight_params = params_of(a);
    auto st = a.state();
    straight_ema = st.ema;
  }
  {
    train::Trainer b(cfg, *comm, d / "resumed");
    b.run(k);  // writes the checkpoint at step k (the end of this run)
  }
  train::Trainer c(cfg, *comm, d / "resumed");
  BOOST_TEST(!c.resume_latest().empty());
  BOOST_TEST(c.step() == k);
  c.run(2 * k);
  BOOST_TEST(test::maps_equal(params_of(c), straight_params));
  BOOST_TEST(test::maps_equal(c.state().ema, straight_ema));
  // And the difference is real: a fresh trainer at step 0 differs from both.
  train::Trainer fresh(cfg, *comm, d / "fresh");
  BOOST_TEST(!test::maps_equal(params_of(fresh), straight_params));
}

BOOST_AUTO_TEST_CASE(truncated_checkpoint_is_reported_and_not_loaded) {
  test::TempDir d("trunc");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  tr.run(2);
  auto path = tr.save_checkpoint();
  auto full = test::read_file(path);
  train::Trainer victim(cfg, *comm, d / "run");  // fresh weights, same workdir
  auto before = params_of(victim);
  for (double frac : {0.1, 0.5, 0.9, 0.999}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        << full.substr(0, static_cast<size_t>(static_cast<double>(full.size()) * frac));
    auto msg = error_of([&] { victim.resume_latest(); });
    BOOST_TEST_INFO(frac << ": " << msg);
    BOOST_TEST(msg.find("no usable checkpoint") != std::string::npos);
    BOOST_TEST(msg.find(path) != std::string::npos);
    BOOST_TEST(fs::exists(path + ".corrupt"));  // set aside, never deleted
    BOOST_TEST(!fs::exists(path));
    BOOST_TEST(test::maps_equal(params_of(victim), before));
    BOOST_TEST(victim.step() == 0);
    fs::remove(path + ".corrupt");
  }
}

BOOST_AUTO_TEST_CASE(corrupted_checkpoint_is_reported_and_not_loaded) {
  test::TempDir d("corrupt");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  tr.run(2);
  auto path = tr.save_checkpoint();
  // Corrupt a tensor that is read late (Adam moments come after params and EMA), so that
  // earlier ones would already have been read: nothing may be applied all the same.
  auto st = io::load_checkpoint(path);
  auto last = std::prev(st.exp_avg_sq.end());
  while (last->second.numel() < 64 || (last->second == 0).any().item<bool>()) --last;
  corrupt_tensor_bytes(path, last->second);
  train::Trainer victim(cfg, *comm, d / "run");
  auto before = params_of(victim);
  auto msg = error_of([&] { victim.resume_latest(); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(path) != std::string::npos);
  BOOST_TEST(fs::exists(path + ".corrupt"));
  BOOST_TEST_MESSAGE("corruption report: " << msg);
  BOOST_TEST(msg.find(last->first) != std::string::npos);
  BOOST_TEST(msg.find("corrupted") != std::string::npos);
  BOOST_TEST(test::maps_equal(params_of(victim), before));
  BOOST_TEST(victim.step() == 0);
}

BOOST_AUTO_TEST_CASE(checkpoint_of_another_model_is_refused_by_name) {
  test::TempDir d("other");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  {
    train::Trainer tr(cfg, *comm, d / "run");
    tr.save_checkpoint();
  }
  auto wider = cfg;
  wider.model.nf = 12;
  train::Trainer other(wider, *comm, d / "run");
  auto msg = error_of([&] { other.resume_latest(); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("has shape [") != std::string::npos);
  BOOST_TEST(msg.find("but this model's is [") != std::string::npos);
  BOOST_TEST(msg.find(io::latest_checkpoint(d / "run")) != std::string::npos);
  BOOST_TEST(other.step() == 0);
}

// The writer thread and an inline write of the same state give the same bytes; so do two
// writes of one state a second apart (no timestamps in the file). The trainer's own
// background checkpoint is that same file.
BOOST_AUTO_TEST_CASE(background_and_inline_checkpoints_are_bitwise_equal) {
  test::TempDir d("ckasync");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  tr.run(3);  // its last checkpoint is written by the background thread
  const auto from_run = test::read_file(io::latest_checkpoint(d / "run"));
  auto st = io::load_checkpoint(io::latest_checkpoint(d / "run"));
  {
    train::CheckpointWriter bg(d.path(), 0, 0, /*async=*/true);
    bg.submit(st, d / "bg.h5");
    bg.wait();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  train::CheckpointWriter inl(d.path(), 0, 0, /*async=*/false);
  inl.submit(st, d / "inline.h5");
  BOOST_TEST(from_run.size() > 1000u);
  BOOST_TEST((test::read_file(d / "bg.h5") == from_run));
  BOOST_TEST((test::read_file(d / "inline.h5") == from_run));
}

// A checkpoint with a NaN is never written (named in the error), and none is left behind.
BOOST_AUTO_TEST_CASE(non_finite_state_is_never_written) {
  test::TempDir d("cknan");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  auto st = tr.state();
  auto& [name, t] = *st.exp_avg.begin();
  t.view(-1)[0] = std::numeric_limits<float>::infinity();
  auto msg = error_of([&] { io::save_checkpoint(d / "x.h5", st); });
  BOOST_TEST(msg.find("optimizer/exp_avg/" + name) != std::string::npos);
  for (const auto& e : fs::directory_iterator(d.path())) BOOST_TEST(e.path().filename() == "data.h5");
}

// A flipped byte in /config (which has no Fletcher-32 filter: it is one string) fails its CRC-32.
BOOST_AUTO_TEST_CASE(config_has_a_checksum) {
  test::TempDir d("ckcrc");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  const auto path = tr.save_checkpoint();
  const auto toml = io::load_checkpoint_header(path).config_toml;
  const std::string needle = "num_scales = " + std::to_string(cfg.model.num_scales);
  std::string file = test::read_file(path);
  auto pos = file.find(needle);
  BOOST_REQUIRE(pos != std::string::npos);
  BOOST_REQUIRE(toml.find(needle) != std::string::npos);
  file[pos + needle.size() - 1] = static_cast<char>(file[pos + needle.size() - 1] ^ 0x01);  // 10 -> 11, say
  std::ofstream(path, std::ios::binary | std::ios::trunc) << file;
  auto msg = error_of([&] { io::load_checkpoint_header(path); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("/config fails its CRC-32 check") != std::string::npos);
  BOOST_TEST(msg.find(path) != std::string::npos);
}

// checkpoint.keep = 2 with snapshot_keep_freq = 4: the newest two and every 4th step stay.
BOOST_AUTO_TEST_CASE(keep_prunes_old_checkpoints) {
  test::TempDir d("ckkeep");
  auto cfg = test::tiny_image_config(d / "data.h5");
  cfg.training.snapshot_freq = 1;
  cfg.checkpoint.keep = 2;
  cfg.training.snapshot_keep_freq = 4;
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  tr.run(9);
  std::vector<int64_t> steps;
  for (const auto& [s, p] : io::list_checkpoints(d / "run")) steps.push_back(s);
  BOOST_TEST(steps == (std::vector<int64_t>{4, 8, 9}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(not_a_checkpoint) {
  test::TempDir d("notck");
  auto f = h5::File::create(d / "x.h5");
  h5::write_tensor(f.id(), "a", torch::ones({3}));
  f.close();
  auto msg = error_of([&] { io::load_checkpoint(d / "x.h5"); });
  BOOST_TEST(msg.find("not a scorch checkpoint") != std::string::npos);
}

// Format versions: version 1 files (before /rng/cuda) still load; a newer version than this
// scorch reads is refused by name.
BOOST_AUTO_TEST_CASE(older_format_loads_and_newer_is_refused) {
  test::TempDir d("ckver");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  tr.run(2);
  const auto path = tr.save_checkpoint();
  BOOST_TEST(io::load_checkpoint_header(path).step == 2);
  auto set_version = [&](int64_t v) {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    BOOST_REQUIRE(f >= 0);
    H5Adelete(f, "version");
    h5::set_attr(f, "version", v);
    H5Fclose(f);
  };
  set_version(1);
  auto st = io::load_checkpoint(path);
  BOOST_TEST(st.step == 2);
  train::Trainer resumed(cfg, *comm, d / "run");
  BOOST_TEST(resumed.resume_latest() == path);
  BOOST_TEST(test::maps_equal(params_of(resumed), params_of(tr)));
  set_version(io::kCheckpointVersion + 1);
  auto msg = error_of([&] { io::load_checkpoint(path); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(fmt::format("checkpoint version {} is not supported", io::kCheckpointVersion + 1)) !=
             std::string::npos);
}

// Identity and lineage (version 4): the identity is determined by the content (equal for the
// same state, written again), stored and verified on load, so a tensor rewritten in place by
// another tool (with valid HDF5 checksums) is refused; a fresh run is one branch from step 0,
// resuming continues it, a new branch keeps the old one's steps.
BOOST_AUTO_TEST_CASE(identity_is_the_content_and_lineage_the_history) {
  test::TempDir d("ckid");
  auto cfg = test::tiny_image_config(d / "data.h5");
  auto comm = dist::mpi_self();
  train::Trainer tr(cfg, *comm, d / "run");
  tr.run(2);
  const auto path = tr.save_checkpoint();
  auto a = io::load_checkpoint(path);
  BOOST_TEST(a.identity.size() == 64u);
  BOOST_TEST(a.identity == io::content_identity(a));
  BOOST_TEST(io::checkpoint_identity(path) == a.identity);
  BOOST_TEST(io::load_checkpoint_header(path).identity == a.identity);
  io::check_lineage(a.lineage, "test");
  BOOST_TEST(a.lineage.size() == 18u);  // one branch: 16 hex digits "@0"
  BOOST_TEST(a.lineage.substr(16) == "@0");
  // Written again elsewhere: the same identity; another step: another.
  io::save_checkpoint(d / "copy.h5", a);
  BOOST_TEST(io::load_checkpoint(d / "copy.h5").identity == a.identity);
  tr.run(3);
  const auto b = io::load_checkpoint(tr.save_checkpoint());
  BOOST_TEST(b.identity != a.identity);
  BOOST_TEST(b.lineage == a.lineage);
  // A new branch from step 2: steps up to 2 are the old branch's, later ones the new one's.
  const auto l2 = io::lineage_with_branch(a.lineage, 2);
  io::check_lineage(l2, "test");
  BOOST_TEST(io::lineage_branch_at(l2, 2) == io::lineage_branch_at(a.lineage, 2));
  BOOST_TEST(io::lineage_branch_at(l2, 3) != io::lineage_branch_at(a.lineage, 3));
  BOOST_TEST(io::lineage_branch_at("", 3).empty());
  BOOST_TEST(error_of([] { io::check_lineage("abc@5 def@3", "x"); }).find("is not a lineage") != std::string::npos);
  BOOST_TEST(error_of([] { io::check_lineage("xyz@0", "x"); }).find("is not a lineage") != std::string::npos);
  // One parameter rewritten in place (HDF5 recomputes its Fletcher-32): refused by identity.
  {
    const auto& [name, t] = *a.params.begin();
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    BOOST_REQUIRE(f >= 0);
    const std::string ds = "model/params/" + name;
    hid_t h = H5Dopen2(f, ds.c_str(), H5P_DEFAULT);
    BOOST_REQUIRE(h >= 0);
    auto changed = (t.to(torch::kFloat32) + 1).contiguous();
    BOOST_REQUIRE(H5Dwrite(h, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, changed.data_ptr()) >= 0);
    H5Dclose(h);
    H5Fclose(f);
  }
  const auto msg = error_of([&] { io::load_checkpoint(path); });
  BOOST_TEST(msg.find(path + ": its content does not match the identity recorded") != std::string::npos, msg);
}

BOOST_AUTO_TEST_SUITE_END()
