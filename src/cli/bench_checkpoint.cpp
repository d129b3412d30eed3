// `scorch bench checkpoint`: the write throughput of a checkpoint against `dd` of the same
// size with conv=fsync on the same disk, and what a checkpoint costs training: the stall of
// the training thread and the extra wall time, synchronous against asynchronous.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "scorch/cli/bench.h"
#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/io/checkpoint.h"
#include "scorch/dist/backend.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

using namespace bench;

struct CheckpointOptions {
  Common common;
  int64_t steps = 5, checkpoints = 4, synthetic = 0;
};

struct CheckpointFigures {
  double stall_ms = 0, overhead_ms = 0, write_s = 0;
  int64_t bytes = 0;
};

// Trains K rounds of `steps` steps, checkpointing after each round, and compares with the
// same rounds without checkpoints: the stall is the time save_checkpoint takes on the
// training thread, the overhead the extra wall time per checkpoint (the background write
// competes for the cores).
CheckpointFigures time_checkpoints(const Config& cfg, dist::Communicator& comm, const torch::Device& device,
                                   const std::string& dir, const CheckpointOptions& o) {
  train::Trainer trainer(cfg, comm, dir, device);
  for (int i = 0; i < 2; ++i) trainer.train_step();
  auto rounds = [&](bool save) {
    std::vector<double> stalls;
    comm.barrier();
    auto t0 = clock_type::now();
    for (int64_t k = 0; k < o.checkpoints; ++k) {
      for (int64_t i = 0; i < o.steps; ++i) trainer.train_step();
      if (device.is_cuda()) torch::cuda::synchronize();
      if (save) {
        auto s0 = clock_type::now();
        trainer.save_checkpoint(/*wait=*/false);
        stalls.push_back(std::chrono::duration<double>(clock_type::now() - s0).count());
      }
    }
    trainer.wait_for_checkpoints();
    if (device.is_cuda()) torch::cuda::synchronize();
    return std::pair{std::chrono::duration<double>(clock_type::now() - t0).count(), stalls};
  };
  const auto [plain_s, none] = rounds(false);
  const auto [with_s, stalls] = rounds(true);
  CheckpointFigures f;
  f.stall_ms = stalls.empty() ? 0 : median(stalls) * 1e3;
  f.overhead_ms = (slowest(comm, with_s) - slowest(comm, plain_s)) / static_cast<double>(o.checkpoints) * 1e3;
  const auto st = trainer.checkpoint_stats();
  f.write_s = st.writes > 0 ? st.total_write_s / static_cast<double>(st.writes) : 0;
  f.bytes = st.last_bytes;
  return f;
}

int bench_checkpoint(const CheckpointOptions& o, dist::Communicator& comm) {
  SCORCH_CHECK(!o.common.workdir.empty(), "bench checkpoint needs --workdir DIR on the disk to measure");
  SCORCH_CHECK(o.steps > 0 && o.checkpoints > 0, "bench checkpoint: --steps and --checkpoints must be positive");
  Config cfg = load_config(o.common.config, o.common.sets);
  const auto device = dist::choose_device(cfg.dist.device, comm);
  SyntheticData synthetic = use_synthetic_data(cfg, o.synthetic, comm);
  const std::string dir = o.common.workdir + "/scorch_bench_checkpoint";
  std::map<std::string, CheckpointFigures> figs;
  for (bool async : {false, true}) {
    Config c = cfg;
    c.checkpoint.async = async;
    c.checkpoint.keep = 1;
    figs[async ? "async" : "sync"] = time_checkpoints(c, comm, device, dir + (async ? "/async" : "/sync"), o);
  }
  synthetic.remove(comm);
  if (comm.rank() == 0) {
    // dd of the same size to the same folder, flushed to the disk like a checkpoint (fsync).
    const auto mb = std::max<int64_t>(1, (figs["sync"].bytes + (1 << 20) - 1) >> 20);
    const std::string ddfile = dir + "/dd.tmp";
    const auto t0 = clock_type::now();
    const int rc = std::system(fmt::format("dd if=/dev/zero of='{}' bs=1M count={} conv=fsync status=none", ddfile, mb).c_str());
    const double dd_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    // What checking a checkpoint's identity costs (io/checkpoint.h): the stored attribute
    // (what every reuse of a derived result reads), the content hash over the tensors in
    // memory (computed on every write and verified on every full load), the file's SHA-256
    // (the alternative), and the full verified load for scale.
    const std::string ck = io::latest_checkpoint(dir + "/sync");
    auto timed = [](const auto& f) {
      std::vector<double> t;
      for (int i = 0; i < 3; ++i) {
        const auto t0 = clock_type::now();
        f();
        t.push_back(std::chrono::duration<double>(clock_type::now() - t0).count() * 1e3);
      }
      return median(t);
    };
    io::TrainState loaded;
    const double attr_ms = timed([&] { (void)io::load_checkpoint_header(ck).identity; });
    const double load_ms = timed([&] { loaded = io::load_checkpoint(ck); });
    const double content_ms = timed([&] { (void)io::content_identity(loaded); });
    const double file_ms = timed([&] { (void)file_sha256_hex(ck); });
    std::error_code ec;
    fs::remove_all(dir, ec);
    fmt::print("# scorch bench checkpoint: {} ({}, nf {}), {} ranks on {}, {} checkpoints every {} steps, folder {}\n",
               o.common.config.empty() ? "defaults" : o.common.config, cfg.model.name, cfg.model.nf, comm.size(),
               dist::describe_device(device), o.checkpoints, o.steps, o.common.workdir);
    fmt::print("{:<7} {:>9} {:>12} {:>16} {:>10} {:>9}\n", "mode", "file MB", "stall ms", "overhead ms/ckpt",
               "write s", "MB/s");
    for (const auto& [mode, f] : figs) {
      fmt::print("{:<7} {:>9.1f} {:>12.1f} {:>16.1f} {:>10.3f} {:>9.1f}\n", mode, f.bytes / 1e6, f.stall_ms,
                 f.overhead_ms, f.write_s, f.write_s > 0 ? f.bytes / 1e6 / f.write_s : 0.0);
    }
    fmt::print("{:<7} {:>9.1f} {:>12} {:>16} {:>10.3f} {:>9.1f}{}\n", "dd", mb * 1.048576, "-", "-", dd_s,
               mb * 1.048576 / dd_s, rc == 0 ? "" : "  (dd failed)");
    fmt::print("# write s: commit of one file (HDF5 write, read-back check, fsync, rename); dd: bs=1M conv=fsync of "
               "the same size. stall: time save_checkpoint holds the training thread; overhead: extra wall time per "
               "checkpoint against the same steps without checkpoints\n");
    fmt::print("identity of a {:.1f} MB checkpoint (median of 3, ms): stored attribute {:.3f} | content SHA-256 of the "
               "tensors in memory {:.1f} | file SHA-256 {:.1f} | full verified load (includes the content hash) {:.1f}\n",
               figs["sync"].bytes / 1e6, attr_ms, content_ms, file_ms,
               load_ms);
  }
  return 0;
}

}  // namespace

Command bench_checkpoint_command() {
  return make_command<CheckpointOptions>(
      "checkpoint", "checkpoint write throughput (against dd) and training stall, sync vs async",
      [](CLI::App& app, CheckpointOptions& o) {
        add_common(app, o.common, false);
        app.add_option("--steps", o.steps, "training steps between checkpoints")->capture_default_str();
        app.add_option("--checkpoints", o.checkpoints, "checkpoints per mode")->capture_default_str();
        app.add_option("--synthetic", o.synthetic, "use N random items of the job's shape instead of data.path")
            ->capture_default_str();
        app.footer("Writes into --workdir DIR/scorch_bench_checkpoint (removed afterwards): put DIR on the disk to measure.");
      },
      bench_checkpoint);
}

}  // namespace scorch::cli
