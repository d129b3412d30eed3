// `scorch info`: the parameter count of a job's network, a checkpoint's step and the
// resolved configuration; `--keys` lists every configuration key with its meaning.
#include <CLI/CLI.hpp>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/torch_compat.h"
#include "scorch/dist/backend.h"
#include "scorch/io/checkpoint.h"
#include "scorch/models/model.h"

namespace scorch::cli {

namespace {

struct InfoOptions {
  Common common;
  bool keys = false;
};

std::string grouped(int64_t v) {  // 62758915 -> 62,758,915
  const auto n = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < n.size(); ++i) out += (i > 0 && (n.size() - i) % 3 == 0 ? "," : "") + n.substr(i, 1);
  return out;
}

int info(const InfoOptions& opt, dist::Communicator& comm) {
  if (comm.rank() != 0) return 0;
  if (opt.keys) {
    for (const auto& [key, help] : config_keys()) fmt::print("{:<34} {}\n", key, help);
    return 0;
  }
  auto r = resolve(opt.common, /*need_ckpt=*/false);
  if (r.cfg.model.name == "analytic_gmm") {
    fmt::print("model         analytic_gmm ({} components, exact score, no parameters)\n", r.cfg.model.gmm_means.size());
  } else {
    auto model = models::make_model(r.cfg);
    const auto n = models::count_parameters(*model);
    fmt::print("model         {} ({} parameters, {})\n", r.cfg.model.name, n, grouped(n));
  }
  fmt::print("sde           {}\n", r.cfg.training.sde);
  auto shape = r.cfg.item_shape();
  fmt::print("data item     [{}]\n", fmt::join(shape, ", "));
  fmt::print("build         LibTorch {}, CUDA {}, NCCL communicator {}\n", compat::torch_version(),
             torch::cuda::is_available() ? fmt::format("available ({} GPUs)", torch::cuda::device_count())
                                         : "not available",
             dist::nccl_compiled() ? "compiled" : "not compiled");
  if (!r.ckpt.empty()) {
    auto st = io::load_checkpoint_header(r.ckpt);
    fmt::print("checkpoint    {}\n", r.ckpt);
    fmt::print("step          {}\n", st.step);
    fmt::print("world size    {} (epoch {}, batch {} of it)\n", st.world_size, st.epoch, st.batch_in_epoch);
  }
  fmt::print("\n{}", to_toml(r.cfg));
  return 0;
}

}  // namespace

Command info_command() {
  return make_command<InfoOptions>(
      "info", "parameter count, checkpoint step and resolved config",
      [](CLI::App& app, InfoOptions& opt) {
        add_common(app, opt.common, true);
        app.add_flag("--keys", opt.keys, "list every configuration key with its meaning");
      },
      [](const InfoOptions& opt, dist::Communicator& comm) { return info(opt, comm); });
}

}  // namespace scorch::cli
