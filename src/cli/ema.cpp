// `scorch ema`: a power-function EMA profile chosen after training (Karras et al., 2024,
// EDM2, section 3). The snapshots that training stored (ema.sigma_rels, every
// ema.snapshot_kimg thousand images; io/ema_snapshots.h) up to the chosen step combine, with
// the least-squares weights of optim/power_ema.h, into the profile of the requested
// sigma_rel at that step; the result is a checkpoint (the raw weights of that step, the
// reconstruction as its EMA) that `sample`, `eval`, `export` and the sweep use like any other.
#include <CLI/CLI.hpp>
#include <fmt/ranges.h>

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

std::string reconstruct_ema(const std::string& workdir, double sigma_rel, int64_t step, const std::string& out_in,
                            double max_residual) {
  SCORCH_CHECK(std::isfinite(sigma_rel) && sigma_rel > 0, "ema --sigma-rel {}: expected a profile width in (0, 0.2887)",
               sigma_rel);
  const double gamma = optim::gamma_of_sigma_rel(sigma_rel);  // refuses a width no finite gamma gives
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
  // The run's own history: the newest checkpoint's lineage (or, before the first checkpoint,
  // the chosen step's snapshot's). A snapshot that another history wrote (a branch that
  // --discard-newer dropped, another run's file) is refused by name: it would blend weights
  // that this run's training never held.
  // Every used snapshot's attributes, read once: its history and its stored profiles.
  std::vector<io::EmaSnapshot> headers;
  for (const auto& u : used) headers.push_back(io::load_ema_snapshot(u.second, /*tensors=*/false));
  std::string history, history_from;
  if (const auto ckpt = io::latest_checkpoint(workdir); !ckpt.empty()) {
    history = io::load_checkpoint_header(ckpt).lineage;
    history_from = ckpt;
  }
  if (history.empty()) {
    history = headers.back().lineage;
    history_from = used.back().second;
  }
  std::vector<std::string> unrecorded;
  for (size_t j = 0; j < used.size(); ++j) {
    const auto& [s, path] = used[j];
    const auto& lineage = headers[j].lineage;
    if (lineage.empty() || history.empty()) {
      unrecorded.push_back(path);
      continue;
    }
    SCORCH_CHECK(io::lineage_branch_at(lineage, s) == io::lineage_branch_at(history, s),
                 "ema: {} (step {}) belongs to another training history than {} (branch {} at step {}, this run's is "
                 "{}): it was written by a branch that --discard-newer dropped, or copied from another run. Move it "
                 "out of {}/ema, or reconstruct at an earlier --step",
                 path, s, history_from, io::lineage_branch_at(lineage, s), s, io::lineage_branch_at(history, s),
                 workdir);
  }
  if (!unrecorded.empty()) {
    spdlog::warn("ema: {} snapshot(s) ({} ..) or the run's checkpoint were written before scorch recorded training "
                 "histories: that they belong to one history is not checked", unrecorded.size(), unrecorded.front());
  }
  // The stored profiles, from the attributes only.
  std::vector<optim::Profile> stored;
  std::vector<std::pair<size_t, size_t>> where;  // (snapshot, profile) of each stored profile
  for (size_t j = 0; j < used.size(); ++j) {
    const auto& profiles = headers[j].profiles;
    for (size_t k = 0; k < profiles.size(); ++k) {
      if (profiles[k].num_updates <= 0) continue;
      stored.push_back({profiles[k].gamma, static_cast<double>(profiles[k].num_updates)});
      where.emplace_back(j, k);
    }
  }
  const double t_target = static_cast<double>(headers.back().profiles.front().num_updates);
  SCORCH_CHECK(t_target > 0 && !stored.empty(), "ema: the snapshot at step {} has seen no update", step);
  std::string profiles_text;
  for (const auto& q : headers.back().profiles) {
    profiles_text += fmt::format("{}{}", profiles_text.empty() ? "" : ", ", q.sigma_rel);
  }
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
  SCORCH_CHECK(residual <= max_residual,
               "ema --sigma-rel {}: the {} stored profiles (sigma_rel {}) of steps {}..{} cannot reconstruct this "
               "profile: relative residual {:.3f} > {} (--max-residual). Choose a sigma_rel between the stored ones, "
               "or store more (ema.sigma_rels, a smaller ema.snapshot_kimg)",
               sigma_rel, stored.size(), profiles_text, used.front().first, step, residual, max_residual);
  // Snapshots are written every ema.snapshot_kimg thousand images: a missing one in the
  // middle (deleted by hand) leaves the others usable but the fit coarser.
  if (used.size() >= 3) {
    int64_t stride = used[1].first - used[0].first;
    for (size_t j = 2; j < used.size(); ++j) stride = std::min(stride, used[j].first - used[j - 1].first);
    std::vector<int64_t> gaps;
    for (size_t j = 1; j < used.size(); ++j) {
      for (int64_t m = used[j - 1].first + stride; m < used[j].first && gaps.size() < 20; m += stride) gaps.push_back(m);
    }
    if (!gaps.empty()) {
      spdlog::warn("ema: snapshots are every {} steps but {}/ema has none at step(s) {}{}: reconstructed from the "
                   "others (residual {:.2e})", stride, workdir, fmt::join(gaps, ", "), gaps.size() >= 20 ? ", ..." : "",
                   residual);
    }
  }
  // Sum in float64, one snapshot's tensors in memory at a time.
  io::TensorMap acc;
  io::EmaSnapshot last;
  io::TensorMap shapes;  // the first snapshot's raw weights: every snapshot must match them
  for (size_t j = 0; j < used.size(); ++j) {
    auto s = io::load_ema_snapshot(used[j].second);
    if (j == 0) shapes = s.params;
    for (const auto& p : s.profiles) {
      SCORCH_CHECK(p.tensors.size() == shapes.size(), "ema: {} holds {} tensors per profile, {} holds {} parameters: "
                   "snapshots of another architecture", used[j].second, p.tensors.size(), used.front().second,
                   shapes.size());
      for (const auto& [name, t] : p.tensors) {
        const auto it = shapes.find(name);
        SCORCH_CHECK(it != shapes.end() && it->second.sizes() == t.sizes(),
                     "ema: {} holds '{}' of shape {} but {} {}: snapshots of another architecture", used[j].second,
                     name, c10::str(t.sizes()), used.front().second,
                     it == shapes.end() ? std::string("has no such parameter")
                                        : fmt::format("has shape {}", c10::str(it->second.sizes())));
      }
    }
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
  st.lineage = last.lineage;
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
  int64_t step = kNewestSnapshot;
  double max_residual = kEmaMaxResidual;
};

}  // namespace

Command ema_command() {
  return make_command<EmaOptions>(
      "ema", "a power-function EMA profile chosen after training, from the stored snapshots (EDM2)",
      [](CLI::App& app, EmaOptions& o) {
        app.add_option("--workdir", o.workdir, "the run (its ema/snapshot_<step>.h5 files)")->required();
        app.add_option("--sigma-rel", o.sigma_rel, "the profile's relative width, in (0, 0.2887), e.g. 0.08")
            ->required();
        app.add_option("--step", o.step, "the snapshot step to reconstruct at (default: the newest)");
        app.add_option("--max-residual", o.max_residual,
                       fmt::format("refuse a reconstruction whose relative profile residual exceeds this (default {})",
                                   kEmaMaxResidual));
        app.add_option("--out", o.out, "output checkpoint (default <workdir>/ema/phema_<step>_sigma<s>.h5)");
        app.footer(
            "Training keeps the profiles of ema.sigma_rels (e.g. [0.05, 0.10]) and stores a snapshot of each every "
            "ema.snapshot_kimg thousand images. The snapshots up to --step are combined with the least-squares "
            "weights that best match the requested profile on [0, t] (closed-form inner products; the relative "
            "residual is printed; one above --max-residual is refused). Only snapshots of the run's own history are used "
            "(a snapshot of a dropped branch or of another run is refused by name). The output holds the step's raw weights and the reconstruction as its EMA: "
            "`scorch sample/eval/export --ckpt OUT` use it; training does not resume from it.");
      },
      [](const EmaOptions& o, dist::Communicator& comm) {
        SCORCH_CHECK(o.step == kNewestSnapshot || o.step >= 0, "ema --step {}: expected a snapshot step (>= 0)", o.step);
        SCORCH_CHECK(o.max_residual > 0, "ema --max-residual {}: expected a positive bound", o.max_residual);
        if (!fs::is_directory(o.workdir)) SCORCH_THROW("ema --workdir {}: no such directory", o.workdir);
        if (comm.rank() == 0) {
          reconstruct_ema(o.workdir, o.sigma_rel, o.step == kNewestSnapshot ? -1 : o.step, o.out, o.max_residual);
        }
        comm.barrier();
        return 0;
      });
}

}  // namespace scorch::cli
