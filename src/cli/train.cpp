// `scorch train`: data-parallel training on this job's ranks, resuming from the newest
// usable checkpoint in --workdir (whose config becomes the base of the resolution), or from
// --ckpt. Rank 0 holds the workdir lock for the whole run and keeps <workdir>/status.json
// current, so that wrappers need not trust an exit code that a launcher may rewrite.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/dist/backend.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/files.h"
#include "scorch/train/discard.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

// When this process started (the first call, made before training): the holder's start
// time in status.json, as in the workdir lock.
const std::string& process_start_time() {
  static const std::string t = local_time_iso8601();
  return t;
}

// <workdir>/status.json: {"state": running | finished | stopped | failed, "step", "checkpoint",
// "exit_code", "message", "pid", "host", "started", "time"}. Rank 0 only, at the start, at
// every checkpoint (step and checkpoint reached) and at the end. A run killed outright stays
// "running" here, with how far it got; `scorch info --workdir` tells it is dead (nothing holds
// the lock) and jobs/launch.sh and the Slurm scripts mark it failed with the exit status.
void write_status(const std::string& workdir, const std::string& state, int64_t step, int exit_code,
                  const std::string& message = "") {
  nlohmann::json j{{"state", state},
                   {"step", step},
                   {"checkpoint", io::latest_checkpoint(workdir)},
                   {"exit_code", exit_code},
                   {"message", message},
                   {"host", host_name()},
                   {"pid", ::getpid()},
                   {"started", process_start_time()},
                   {"time", local_time_iso8601()}};
  io::write_text_atomically(workdir + "/status.json", j.dump(2) + "\n");
}

struct TrainOptions : Common {
  bool discard_newer = false;  // --discard-newer
};

// --ckpt OLDER while the workdir holds checkpoints of later steps: a second branch among
// them would leave two histories in one directory. Refused unless --discard-newer, which
// moves the newer checkpoints and everything their steps made (train/discard.h: EMA
// snapshots, sample runs, records, bits/dim batches, log rows) to
// <workdir>/checkpoints/discarded-<time>/. Returns whether training from `ckpt` starts a new
// branch of the history: after a discard, or from another run's file. Rank 0, holding the lock.
bool settle_newer_checkpoints(const std::string& workdir, const std::string& ckpt, bool discard) {
  const int64_t step = io::load_checkpoint_header(ckpt).step;
  std::vector<std::string> newer;
  bool own = false;  // one of this workdir's checkpoints
  std::error_code ec;
  for (const auto& [s, path] : io::list_checkpoints(workdir)) {
    if (s > step) newer.push_back(path);
    own = own || fs::equivalent(path, ckpt, ec);
  }
  if (newer.empty()) return !own;
  SCORCH_CHECK(discard, "--ckpt {} is of step {}, but '{}/checkpoints' holds {} newer checkpoint(s) (up to {}): training "
               "from it would start a second history among them. Resume from the newest (drop --ckpt), or pass "
               "--discard-newer to move the newer ones aside (never deleted) and train from step {}",
               ckpt, step, workdir, newer.size(), newer.back(), step);
  std::string when = local_time_iso8601();
  when.erase(std::remove(when.begin(), when.end(), ':'), when.end());
  std::string dir = fmt::format("{}/checkpoints/discarded-{}", workdir, when);
  for (int i = 1; fs::exists(dir); ++i) dir = fmt::format("{}/checkpoints/discarded-{}.{}", workdir, when, i);
  const auto moved = train::discard_after(workdir, step, dir);
  spdlog::warn("--discard-newer: moved {} checkpoint(s) newer than step {} and what their steps made ({} item(s) in "
               "all: EMA snapshots, sample runs, records, bits/dim batches, log rows) to {}",
               newer.size(), step, moved.size(), dir);
  return true;
}

int train(const TrainOptions& opt, dist::Communicator& comm) {
  // Before anything slow (config, data): a signal from now on means "checkpoint and stop".
  install_stop_handlers();
  (void)process_start_time();
  SCORCH_CHECK(!opt.workdir.empty(), "train needs --workdir DIR (checkpoints and logs go there)");
  const bool root = comm.rank() == 0;
  // One run per workdir: rank 0 takes the lock and every rank learns whether it got it.
  std::unique_ptr<io::WorkdirLock> lock;
  dist::on_root_or_throw(comm, [&] {
    lock = std::make_unique<io::WorkdirLock>(opt.workdir, fmt::format("scorch train ({} ranks)", comm.size()));
    if (!lock->stale_holder().empty()) {
      spdlog::warn("took over the workdir lock of a run that is gone ({})", lock->stale_holder());
    }
    const int stale = io::remove_stale_temps(opt.workdir + "/checkpoints") + io::remove_stale_temps(opt.workdir);
    if (stale > 0) spdlog::warn("removed {} temporary file(s) left by an interrupted write", stale);
  });

  try {
    // The newest checkpoint that verifies (under the lock: corrupt newer ones are renamed
    // aside and reported), unless --ckpt names one.
    Common o = opt;
    train::ResumePoint from{opt.ckpt, {}, false};
    if (!opt.ckpt.empty()) {
      bool branch = false;
      dist::on_root_or_throw(comm, [&] { branch = settle_newer_checkpoints(opt.workdir, opt.ckpt, opt.discard_newer); });
      from.new_branch = dist::broadcast_string(comm, branch ? "1" : "0", 0) == "1";
    }
    if (o.ckpt.empty()) from = train::find_resume_point(comm, opt.workdir);
    o.ckpt = from.path;
    // defaults <- the checkpoint's config (a resumed or imported run) <- --config <- --set
    const Resolved res = resolve(o, /*need_ckpt=*/false);
    const Config& cfg = res.cfg;
    if (!from.path.empty()) {
      // Keys that change what the network means must be the checkpoint's.
      const auto diff = fixed_key_changes(config_of(res.ckpt_config, from.path + ":/config"), cfg);
      std::string list;
      for (const auto& c : diff) {
        list += fmt::format("{}  {}: {} in the checkpoint, {} now", list.empty() ? "" : "\n", c.key, c.before, c.after);
      }
      SCORCH_CHECK(diff.empty(), "cannot resume from {} (step {}) with {} key(s) that change what the network means "
                   "(from {}):\n{}\nThese keys are the checkpoint's for the whole run; train another model in a new "
                   "--workdir. Keys such as optim.lr, training.n_iters, training.log_freq, training.snapshot_freq and "
                   "checkpoint.* may change on resume",
                   from.path, res.ckpt_step, diff.size(),
                   fmt::join(std::vector<std::string>(cfg.sources.begin() + 1, cfg.sources.end()), ", "), list);
    }
    SCORCH_CHECK(cfg.model.name != "analytic_gmm",
                 "model.name = \"analytic_gmm\" is an exact score with nothing to train: use it with sample, eval, "
                 "encode and decode directly (--config JOB --workdir DIR)");
    const auto device = dist::choose_device(cfg.dist.device, comm);
    train::Trainer trainer(cfg, comm, opt.workdir, device);
    // Written only once the configuration has built a model and loaded its data.
    if (root) io::write_text_atomically(opt.workdir + "/config.toml", to_toml(cfg));
    trainer.resume(std::move(from));
    if (root) {
      write_status(opt.workdir, "running", trainer.step(), -1);
      // How far the run got, at every checkpoint: a run killed outright leaves "running" with
      // the step and checkpoint it reached (scorch info tells it is dead).
      trainer.set_checkpoint_listener([&](int64_t step) {
        try {
          write_status(opt.workdir, "running", step, -1);
        } catch (const std::exception& e) {
          spdlog::warn("status.json not updated at step {}: {}", step, e.what());
        }
      });
    }
    const bool finished = trainer.run();
    const int code = finished ? 0 : kStoppedExitCode;
    if (root) {
      write_status(opt.workdir, finished ? "finished" : "stopped", trainer.step(), code,
                   finished ? "" : "stopped by a signal after checkpointing: resume by running the same command");
      // The checkpoint of the step reached (what a resume starts from), not merely the newest name.
      const auto reached = io::checkpoint_path(opt.workdir, trainer.step());
      fmt::print("train: step {} in {} (checkpoint {}){}\n", trainer.step(), opt.workdir,
                 fs::exists(reached) ? reached : io::latest_checkpoint(opt.workdir),
                 finished ? "" : " - stopped early by a signal");
    }
    return code;
  } catch (const std::exception& e) {
    if (root) {
      try {
        write_status(opt.workdir, "failed", -1, 1, e.what());
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace

Command train_command() {
  return make_command<TrainOptions>(
      "train",
      "train a score model; resumes from the newest usable checkpoint in --workdir (and takes its config as the base)",
      [](CLI::App& app, TrainOptions& opt) {
        add_common(app, opt, true);
        app.add_flag("--discard-newer", opt.discard_newer,
                     "with --ckpt FILE older than the workdir's newest checkpoint: move the newer checkpoints to "
                     "<workdir>/checkpoints/discarded-<time>/ (never deleted) and train from FILE");
        app.footer(fmt::format(
            "Exit status: 0 finished; {} stopped by SIGUSR1/SIGTERM/SIGINT after committing a checkpoint (run the same "
            "command to resume: Slurm scripts requeue on it); anything else failed. <workdir>/status.json says the "
            "same (state running | finished | stopped | failed). Through mpirun send SIGUSR1 (mpirun forwards it; on "
            "SIGTERM or Ctrl-C it kills the ranks about a second later), or launch with jobs/launch.sh mpirun ..., "
            "which turns SIGTERM and Ctrl-C into SIGUSR1.\n"
            "Checkpoints: every training.snapshot_freq steps and at the end, written in the background "
            "(checkpoint.async); checkpoint.keep = K keeps the newest K plus every training.snapshot_keep_freq-th. A "
            "newest checkpoint that is corrupt, holds NaN/Inf or whose name disagrees with its step is renamed *.corrupt, "
            "*.nonfinite or *.misnamed and the previous one used. Non-finite gradients: "
            "training.on_nonfinite = skip | stop, training.max_nonfinite. One run per workdir (<workdir>/.lock).\n"
            "Devices and communication: dist.device (auto | cpu | cuda: one GPU per rank), dist.backend "
            "(auto | mpi | nccl), dist.bucket_mb, dist.overlap; training.grad_accum, training.precision (fp32 | bf16), "
            "training.channels_last. `scorch info --keys` lists every key.",
            kStoppedExitCode));
      },
      [](const TrainOptions& opt, dist::Communicator& comm) { return train(opt, comm); });
}

}  // namespace scorch::cli
