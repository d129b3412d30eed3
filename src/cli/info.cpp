// `scorch info`: the parameter count of a job's network, a checkpoint's step, the state of
// the workdir's run (a dead run told from a live one by its lock) and the resolved
// configuration; `--keys` lists every configuration key with its meaning.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/torch_compat.h"
#include "scorch/dist/backend.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/files.h"
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

// "run           running (...)" or "dead (...)" from <workdir>/status.json and its lock: a run
// killed by SIGKILL or a lost node cannot mark itself, but the kernel dropped its flock.
std::string run_state_text(const std::string& workdir) {
  const std::string path = workdir + "/status.json";
  std::ifstream in(path);
  if (!in) return "";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return fmt::format("run           status.json cannot be read ({})\n", e.what());
  }
  const auto state = j.value("state", std::string("?"));
  const auto message = j.value("message", std::string());
  const auto who = fmt::format("pid {} on host {}, started {}", j.value("pid", 0), j.value("host", std::string("?")),
                               j.value("started", j.value("time", std::string("?"))));
  if (state != "running") {
    return fmt::format("run           {} at step {} (exit status {}){}\n", state, j.value("step", int64_t{-1}),
                       j.value("exit_code", -1),
                       message.empty() ? "" : ": " + message);
  }
  if (io::lock_is_held(workdir)) return fmt::format("run           running ({}; holds {}/.lock)\n", who, workdir);
  return fmt::format("run           dead: status.json says running ({}) but no process holds {}/.lock: it was killed "
                     "(SIGKILL, a lost node, a launcher that ended it) before it could say so; it had reached step {} "
                     "(checkpoint {}). Run the same train command to resume from the newest checkpoint\n",
                     who, workdir, j.value("step", int64_t{-1}), j.value("checkpoint", std::string("none")));
}

int info(const InfoOptions& opt, dist::Communicator& comm) {
  if (comm.rank() != 0) return 0;
  if (opt.keys) {
    for (const auto& [key, help] : config_keys()) fmt::print("{:<34} {}\n", key, help);
    return 0;
  }
  Common c = opt.common;
  std::string source;  // what the model described comes from
  if (!c.workdir.empty()) {
    SCORCH_CHECK(std::filesystem::is_directory(c.workdir), "info --workdir {}: no such directory", c.workdir);
    const std::string run_toml = c.workdir + "/config.toml";
    if (c.ckpt.empty() && io::latest_checkpoint(c.workdir).empty()) {
      // No checkpoint yet: the run's own config.toml (written when training starts) or --config.
      if (c.config.empty() && std::filesystem::is_regular_file(run_toml)) c.config = run_toml;
      SCORCH_CHECK(!c.config.empty(), "info --workdir {}: no run there (no checkpoints/ckpt_*.h5 and no config.toml); "
                   "pass --config JOB to describe a job's model", c.workdir);
      source = fmt::format("no checkpoint yet: the model of {}", c.config);
    }
  }
  auto r = resolve(c, /*need_ckpt=*/false);
  if (!r.workdir.empty()) fmt::print("{}", run_state_text(r.workdir));
  if (!source.empty()) fmt::print("checkpoint    {}\n", source);
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
    fmt::print("identity      {}\n", r.ckpt_identity);
    if (!st.lineage.empty()) {
      const auto branches = std::count(st.lineage.begin(), st.lineage.end(), '@');
      fmt::print("history       {} ({} branch{})\n", st.lineage, branches, branches == 1 ? "" : "es");
    }
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
