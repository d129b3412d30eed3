// `scorch train`: data-parallel training on this job's ranks, resuming from the newest
// checkpoint in --workdir (whose config becomes the base of the resolution).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/stop.h"
#include "scorch/dist/backend.h"
#include "scorch/io/checkpoint.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

int train(const Common& opt, dist::Communicator& comm) {
  SCORCH_CHECK(!opt.workdir.empty(), "train needs --workdir DIR (checkpoints and logs go there)");
  // defaults <- the newest checkpoint's config (a resumed or imported run) <- --config <- --set
  Config cfg = resolve(opt, /*need_ckpt=*/false).cfg;
  SCORCH_CHECK(cfg.model.name != "analytic_gmm",
               "model.name = \"analytic_gmm\" is an exact score with nothing to train: use it with sample, eval, "
               "encode and decode directly (--config JOB --workdir DIR)");
  if (comm.rank() == 0) {
    fs::create_directories(opt.workdir);
    std::ofstream(opt.workdir + "/config.toml") << to_toml(cfg);
  }
  install_stop_handlers();
  const auto device = dist::choose_device(cfg.dist.device, comm);
  train::Trainer trainer(cfg, comm, opt.workdir, device);
  trainer.resume_latest();
  bool finished = trainer.run();
  if (comm.rank() == 0) {
    fmt::print("train: step {} in {} (checkpoint {}){}\n", trainer.step(), opt.workdir,
               io::latest_checkpoint(opt.workdir), finished ? "" : " - stopped early by a signal");
  }
  return finished ? 0 : kStoppedExitCode;
}

}  // namespace

Command train_command() {
  return make_command<Common>(
      "train", "train a score model; resumes from the newest checkpoint in --workdir (and takes its config as the base)",
      [](CLI::App& app, Common& opt) {
        add_common(app, opt, false);
        app.footer(fmt::format(
            "Checkpoints every training.snapshot_freq steps and at the end; SIGTERM/SIGUSR1 checkpoint and exit with "
            "status {}. Devices and communication: dist.device (auto | cpu | cuda: one GPU per rank), dist.backend "
            "(auto | mpi | nccl), dist.bucket_mb, dist.overlap; training.grad_accum, training.precision (fp32 | bf16), "
            "training.channels_last. `scorch info --keys` lists every key.",
            kStoppedExitCode));
      },
      [](const Common& opt, dist::Communicator& comm) { return train(opt, comm); });
}

}  // namespace scorch::cli
