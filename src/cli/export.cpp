// `scorch export`: a scorch checkpoint -> a PyTorch file. The default is
// score_sde_pytorch's checkpoint layout ({optimizer, model, ema, step}, the inverse of
// `import`), which its run_lib restores with strict loading; `--state-dict ema|model`
// writes a plain state_dict of the network instead. Written with LibTorch's own pickler
// (torch::pickle_save), so Python's torch.load reads it with no scorch code.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/io/checkpoint.h"
#include "scorch/interop/score_sde_pytorch.h"
#include "scorch/io/torch_pickle.h"
#include "scorch/models/model.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct ExportOptions {
  Common common;
  std::string out, state_dict;
};

int export_checkpoint(const ExportOptions& opt, dist::Communicator& comm) {
  SCORCH_CHECK(opt.state_dict.empty() || opt.state_dict == "ema" || opt.state_dict == "model",
               "--state-dict '{}' is not one of: ema, model", opt.state_dict);
  auto r = resolve(opt.common, /*need_ckpt=*/true);
  SCORCH_CHECK(!r.ckpt.empty(), "scorch export needs --ckpt FILE or --workdir DIR with a checkpoint");
  if (comm.rank() != 0) return 0;
  const auto& cfg = r.cfg;
  SCORCH_CHECK(cfg.model.name != "analytic_gmm", "model.name = \"analytic_gmm\" has no weights to export");
  auto st = io::load_checkpoint(r.ckpt);
  auto net = models::make_model(cfg);
  const bool reference_net = cfg.model.name == "ncsnpp";  // NCSN++ and DDPM++ (score_sde_pytorch's ncsnpp.py)
  if (!reference_net) {
    spdlog::warn("model.name = \"{}\" is scorch's own network, not one of score_sde_pytorch's: its tensors are "
                 "exported under scorch's names (load them into a port of scorch's {} module)",
                 cfg.model.name, cfg.model.name);
  }
  if (cfg.model.num_classes > 0) {
    spdlog::warn("model.num_classes = {}: the class embedding ('class_embed.*') has no counterpart in "
                 "score_sde_pytorch and is exported under scorch's name", cfg.model.num_classes);
  }
  const auto root = opt.state_dict.empty() ? interop::to_score_sde_pytorch(st, *net, cfg)
                                           : interop::to_state_dict(st, *net, cfg, opt.state_dict == "ema");
  if (fs::path(opt.out).has_parent_path()) fs::create_directories(fs::path(opt.out).parent_path());
  io::save_torch_file(opt.out, root);
  spdlog::info("wrote {} ({}): step {} of {}, {} parameters", opt.out,
               opt.state_dict.empty() ? "score_sde_pytorch checkpoint: optimizer, model, ema, step"
                                      : fmt::format("state_dict with the {} weights", opt.state_dict),
               st.step, r.ckpt, models::count_parameters(*net));
  return 0;
}

}  // namespace

Command export_command() {
  return make_command<ExportOptions>(
      "export", "write a checkpoint as a PyTorch file (score_sde_pytorch's layout, or a plain state_dict)",
      [](CLI::App& app, ExportOptions& opt) {
        add_common(app, opt.common, true);
        app.add_option("--out", opt.out, "the .pth file to write (atomically)")->required();
        app.add_option("--state-dict", opt.state_dict,
                       "write only the network's state_dict with the EMA weights (ema) or the raw ones (model), "
                       "keys without the 'module.' prefix");
        app.footer(
            "Default layout: {'optimizer': Adam state_dict, 'model': {'module.<name>': tensor, ...}, 'ema': {decay, "
            "num_updates, shadow_params}, 'step'}, as score_sde_pytorch's utils.save_checkpoint writes it; its "
            "restore_checkpoint reads it back. `import` then `export` gives back a published file's tensors "
            "bitwise.\nExample: scorch export --workdir runs/cifar10 --out checkpoint_26.pth");
      },
      [](const ExportOptions& opt, dist::Communicator& comm) { return export_checkpoint(opt, comm); });
}

}  // namespace scorch::cli
