// `scorch import`: a published score_sde_pytorch checkpoint -> a scorch HDF5 checkpoint that
// sample, eval, encode/decode and train (resume) accept. Runs on rank 0; the network is
// built from the job file, and every tensor of the file must fit it. The imported EMA
// weights are then run once on the device as a check (finite output on a fixed input).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/random.h"
#include "scorch/dist/backend.h"
#include "scorch/interop/score_sde_pytorch.h"
#include "scorch/models/model.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct ImportOptions {
  Common common;
  std::string from, src, out;
};

// One forward pass of the imported EMA weights on `device` at t = 0.5: the output must be finite.
void verify_on_device(const io::TrainState& st, const Config& cfg, const torch::Device& device) {
  torch::NoGradGuard ng;
  auto net = models::make_model(cfg);
  models::load_weights(*net, io::weights(st, /*use_ema=*/true), st.buffers);
  net->to(device);
  net->eval();
  auto s = sde::make_sde(cfg);
  s->to(device);
  auto score = models::make_score_fn(*net, *s, cfg.training.continuous);
  auto gen = make_generator(device, static_cast<uint64_t>(cfg.seed));
  auto x = torch::rand(with_batch(2, cfg.item_shape()), gen, torch::TensorOptions().device(device));
  auto out = score(x, torch::full({2}, 0.5, x.options()));
  const double mag = out.abs().max().item<double>();
  SCORCH_CHECK(std::isfinite(mag), "the imported weights give a non-finite score on {}: the checkpoint or the job "
               "file is wrong", device.str());
  spdlog::info("verified on {}: the EMA network's score at t = 0.5 is finite (max |score| {:.4g})", device.str(), mag);
}

int import_checkpoint(const ImportOptions& opt, dist::Communicator& comm) {
  SCORCH_CHECK(opt.from == "score-sde-pytorch", "--from '{}' is not a known format: valid is score-sde-pytorch",
               opt.from);
  SCORCH_CHECK(!opt.common.config.empty(),
               "scorch import needs --config JOB.toml: the job whose network the checkpoint holds");
  SCORCH_CHECK(!opt.out.empty() || !opt.common.workdir.empty(), "scorch import needs --out FILE or --workdir DIR");
  Config cfg = load_config(opt.common.config, opt.common.sets);
  const auto device = dist::choose_device(cfg.dist.device, comm);
  if (comm.rank() != 0) return 0;
  auto net = models::make_model(cfg);
  spdlog::info("reading {} (score_sde_pytorch) for the {} network of {} ({} parameters)", opt.src, cfg.model.name,
               opt.common.config, models::count_parameters(*net));
  auto ref = interop::read_score_sde_pytorch(opt.src);
  if (!ref.scorch_config.empty()) {
    // scorch's own export: its network keys must be the job's (weights of a VP network under
    // training.sde = "vesde" would be a checkpoint of another model).
    const auto diff = fixed_key_changes(config_of(ref.scorch_config, opt.src + ":scorch_config"), cfg);
    std::string list;
    for (const auto& c : diff) {
      list += fmt::format("\n  {}: {} in {}, {} in {}", c.key, c.before, opt.src, c.after, opt.common.config);
    }
    SCORCH_CHECK(diff.empty(), "{} was exported by scorch from a model with other network keys than {} ({} "
                 "differ):{}\nImport it with the job it was trained with (or those values via --set)",
                 opt.src, opt.common.config, diff.size(), list);
  }
  auto st = interop::convert_reference(ref, *net, cfg, opt.src);
  verify_on_device(st, cfg, device);
  const std::string dest = opt.out.empty() ? io::checkpoint_path(opt.common.workdir, st.step) : opt.out;
  if (fs::path(dest).has_parent_path()) fs::create_directories(fs::path(dest).parent_path());
  io::save_checkpoint(dest, st);
  spdlog::info("wrote {}: step {}, {} parameters + {} buffers, EMA ({} updates, decay {}), Adam ({} steps)", dest,
               st.step, st.params.size(), st.buffers.size(), st.ema_updates, st.ema_decay, st.adam_steps);
  return 0;
}

}  // namespace

Command import_command() {
  return make_command<ImportOptions>(
      "import", "convert a published checkpoint into a scorch checkpoint",
      [](CLI::App& app, ImportOptions& opt) {
        app.add_option("checkpoint", opt.src, "the reference checkpoint (e.g. checkpoint_26.pth)")
            ->required()
            ->check(CLI::ExistingFile);
        app.add_option("--from", opt.from, "its format: score-sde-pytorch (torch.save of {model, ema, optimizer, step})")
            ->required();
        add_common(app, opt.common, false);
        app.add_option("--out", opt.out,
                       "scorch checkpoint to write (default with --workdir: <workdir>/checkpoints/ckpt_<9-digit step>.h5, "
                       "which train resumes from and sample/eval pick up)");
        app.footer(
            "The network is built from --config (e.g. jobs/cifar10_ve_ncsnpp_deep_continuous.toml); every tensor of the "
            "file must match it by name and shape, or nothing is written.");
      },
      [](const ImportOptions& opt, dist::Communicator& comm) { return import_checkpoint(opt, comm); });
}

}  // namespace scorch::cli
