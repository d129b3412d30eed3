// `scorch ema`: a power-function EMA profile chosen after training (Karras et al., 2024,
// EDM2, section 3). The snapshots that training stored (ema.sigma_rels, every
// ema.snapshot_kimg thousand images; io/ema_snapshots.h) up to the chosen step combine, with
// the least-squares weights of optim/power_ema.h, into the profile of the requested
// sigma_rel at that step; the result is a checkpoint (the raw weights of that step, the
// reconstruction as its EMA) that `sample`, `eval`, `export` and the sweep use like any other.
#include <CLI/CLI.hpp>

#include <cmath>
#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/cli/evaluation.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/io/ema_snapshots.h"
#include "scorch/optim/power_ema.h"

namespace fs = std::filesystem;

namespace scorch::cli {

std::string default_ema_checkpoint(const std::string& workdir, int64_t step, double sigma_rel) {
  return fmt::format("{}/ema/phema_{:09d}_sigma{:.4f}.h5", workdir, step, sigma_rel);
}

std::string reconstruct_ema(const std::string& workdir, double sigma_rel, int64_t step, const std::string& out_in) {
  const double gamma = optim::gamma_of_sigma_rel(sigma_rel);
  const auto all = io::list_ema_snapshots(workdir);
  SCORCH_CHECK(!all.empty(), "ema: {}/ema holds no snapshot (train with ema.sigma_rels = [0.05, 0.10], which stores "
               "one every ema.snapshot_kimg thousand images)", workdir);
  if (step < 0) step = all.back().first;
  std::vector<std::pair<int64_t, std::string>> used;
  std::string steps;
  for (const auto& s : all) {
    if (s.first <= step) used.push_back(s);
    steps += (steps.empty() ? "" : ", ") + std::to_string(s.first);
  }
  SCORCH_CHECK(!used.empty() && used.back().first == step,
               "ema --step {}: no snapshot at that step in {}/ema (snapshots at steps {})", step, workdir, steps);
  // The stored profiles, from the attributes only.
  std::vector<optim::Profile> stored;
  std::vector<std::pair<size_t, size_t>> where;  // (snapshot, profile) of each stored profile
  double t_target = 0;
  for (size_t j = 0; j < used.size(); ++j) {
    const auto h = io::load_ema_snapshot(used[j].second, /*tensors=*/false);
    for (size_t k = 0; k < h.profiles.size(); ++k) {
      if (h.profiles[k].num_updates <= 0) continue;
      stored.push_back({h.profiles[k].gamma, static_cast<double>(h.profiles[k].num_updates)});
      where.emplace_back(j, k);
    }
    if (j + 1 == used.size()) t_target = static_cast<double>(h.profiles.front().num_updates);
  }
  SCORCH_CHECK(t_target > 0 && !stored.empty(), "ema: the snapshot at step {} has seen no update", step);
  const optim::Profile target{gamma, t_target};
  const auto x = optim::posthoc_weights(stored, target);
  // How well the profile is matched: || p - sum x_i p_i || / || p || in L2 on [0, t].
  double ptp = optim::profile_inner_product(target, target), err = ptp;
  for (size_t i = 0; i < stored.size(); ++i) {
    err -= 2 * x[static_cast<int64_t>(i)].item<double>() * optim::profile_inner_product(stored[i], target);
    for (size_t j = 0; j < stored.size(); ++j) {
      err += x[static_cast<int64_t>(i)].item<double>() * x[static_cast<int64_t>(j)].item<double>() *
             optim::profile_inner_product(stored[i], stored[j]);
    }
  }
  const double residual = std::sqrt(std::max(err, 0.0) / ptp);
  // Sum in float64, one snapshot's tensors in memory at a time.
  io::TensorMap acc;
  io::EmaSnapshot last;
  for (size_t j = 0; j < used.size(); ++j) {
    auto s = io::load_ema_snapshot(used[j].second);
    for (size_t i = 0; i < stored.size(); ++i) {
      if (where[i].first != j) continue;
      const double w = x[static_cast<int64_t>(i)].item<double>();
      for (const auto& [name, t] : s.profiles[where[i].second].tensors) {
        auto term = t.to(torch::kFloat64) * w;
        auto it = acc.find(name);
        if (it == acc.end()) {
          acc.emplace(name, term);
        } else {
          it->second.add_(term);
        }
      }
    }
    if (j + 1 == used.size()) last = std::move(s);
  }
  io::TrainState st;
  st.step = step;
  st.world_size = 1;
  st.config_toml = last.config_toml;
  st.params = last.params;
  st.buffers = last.buffers;
  for (auto& [name, t] : acc) {
    const auto& raw = st.params.at(name);
    st.ema[name] = t.to(raw.scalar_type());
    st.exp_avg[name] = torch::zeros_like(raw);
    st.exp_avg_sq[name] = torch::zeros_like(raw);
  }
  st.ema_updates = static_cast<int64_t>(t_target);
  st.ema_profile = fmt::format("power-function EMA sigma_rel {} (gamma {:.4f}) at step {}, reconstructed from {} "
                               "profile snapshots (steps {}..{}), profile residual {:.2e}",
                               sigma_rel, gamma, step, stored.size(), used.front().first, step, residual);
  const std::string out = out_in.empty() ? default_ema_checkpoint(workdir, step, sigma_rel) : out_in;
  if (fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
  io::save_checkpoint(out, st);
  fmt::print("ema: {} -> {}\n", st.ema_profile, out);
  return out;
}

namespace {

struct EmaOptions {
  std::string workdir, out;
  double sigma_rel = 0;
  int64_t step = -1;
};

}  // namespace

Command ema_command() {
  return make_command<EmaOptions>(
      "ema", "a power-function EMA profile chosen after training, from the stored snapshots (EDM2)",
      [](CLI::App& app, EmaOptions& o) {
        app.add_option("--workdir", o.workdir, "the run (its ema/snapshot_<step>.h5 files)")->required();
        app.add_option("--sigma-rel", o.sigma_rel, "the profile's relative width, in (0, 0.3), e.g. 0.08")
            ->required();
        app.add_option("--step", o.step, "the snapshot step to reconstruct at (default: the newest)");
        app.add_option("--out", o.out, "output checkpoint (default <workdir>/ema/phema_<step>_sigma<s>.h5)");
        app.footer(
            "Training keeps the profiles of ema.sigma_rels (e.g. [0.05, 0.10]) and stores a snapshot of each every "
            "ema.snapshot_kimg thousand images. The snapshots up to --step are combined with the least-squares "
            "weights that best match the requested profile on [0, t] (closed-form inner products; the relative "
            "residual is printed). The output holds the step's raw weights and the reconstruction as its EMA: "
            "`scorch sample/eval/export --ckpt OUT` use it; training does not resume from it.");
      },
      [](const EmaOptions& o, dist::Communicator& comm) {
        if (comm.rank() == 0) reconstruct_ema(o.workdir, o.sigma_rel, o.step, o.out);
        comm.barrier();
        return 0;
      });
}

}  // namespace scorch::cli
