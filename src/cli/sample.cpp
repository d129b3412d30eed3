// `scorch sample`: eval.num_samples samples with the EMA weights through the farm
// (farm/farm.h). Sample i draws all its noise from its own stream (eval.seed, i)
// (sampling/noise.h) and batches are fixed ranges of indices, so every sample is the same
// bitwise whatever the world size, the dealing or restarts (on one device type). Each rank
// writes the batches it computes to <workdir>/samples/<run>/batch_<id>.h5; a rerun skips
// finished batches. Rank 0 then writes the manifest and a PNG grid of the first 64.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/cli/evaluation.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/memory.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/data/image_grid.h"
#include "scorch/io/files.h"
#include "scorch/io/hdf5.h"
#include "scorch/sampling/sampler.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

int sample_set(const Loaded& l, dist::Communicator& comm, const SampleRun& run);

}  // namespace

int sample_sets(const Common& opt, dist::Communicator& comm) {
  install_stop_handlers();
  auto l = load_score_model(opt, comm);
  const auto& cfg = l.r.cfg;
  const auto item = cfg.item_shape();
  {
    // Refused before anything is computed: an output the file system cannot hold, or a
    // batch whose sampler state alone (x, noise, drift, score, mean: ~8 copies of the batch
    // in float32) exceeds the memory this node has available.
    int64_t numel = 1;
    for (auto v : item) numel *= v;
    const double item_bytes = static_cast<double>(numel) * (4 + (cfg.is_image_data() ? 1 : 0)) + 8;
    const double need = item_bytes * static_cast<double>(cfg.eval.num_samples * cfg.eval.seed_sets);
    std::error_code ec;
    const auto space = fs::space(l.r.workdir, ec);
    SCORCH_CHECK(ec || need <= static_cast<double>(space.available),
                 "eval.num_samples = {} x eval.seed_sets = {}: the samples need about {} ({} per sample), but the "
                 "file system of '{}' has {} free: lower eval.num_samples or free space (nothing was computed)",
                 cfg.eval.num_samples, cfg.eval.seed_sets, format_bytes(need), format_bytes(item_bytes), l.r.workdir,
                 format_bytes(static_cast<double>(space.available)));
    const double batch_state = 8.0 * static_cast<double>(numel) * 4 * static_cast<double>(cfg.eval.batch_size);
    const double mem = data::available_memory();
    SCORCH_CHECK(l.device.is_cuda() || mem <= 0 || batch_state <= mem,
                 "eval.batch_size = {}: one batch's sampler state needs about {} before the network's own, but {} of "
                 "memory is available: lower eval.batch_size (nothing was computed)",
                 cfg.eval.batch_size, format_bytes(batch_state), format_bytes(mem));
  }
  // The seed sets one after another, each its own resumable run; a signal stops at the set
  // in hand (a rerun skips what is done).
  for (int64_t set = 0; set < cfg.eval.seed_sets; ++set) {
    const int rc = sample_set(l, comm, sample_run(l, set));
    if (rc != 0) return rc;
  }
  return 0;
}

namespace {

int sample_set(const Loaded& l, dist::Communicator& comm, const SampleRun& run) {
  const auto& cfg = l.r.cfg;
  const auto item = cfg.item_shape();
  const std::string what = cfg.is_image_data() ? "images" : "samples";
  const auto ckpt = l.r.ckpt.empty() ? std::string("analytic_gmm (exact score)") : l.r.ckpt;
  if (comm.rank() == 0) {
    spdlog::info("sample run {} ({}, N = {}, eval.seed {}{}, batches of {}, {} rank(s) on {})", run.dir,
                 sampling::short_name(cfg), cfg.model.num_scales, cfg.eval.seed,
                 cfg.eval.seed_sets > 1 ? fmt::format(", seed set {} of {}: samples {}..{}", run.set + 1,
                                                      cfg.eval.seed_sets, run.first_index,
                                                      run.first_index + cfg.eval.num_samples - 1)
                                        : std::string(),
                 cfg.eval.batch_size, comm.size(), l.device.str());
    note_other_checkpoint_runs(run.dir, run.name.substr(0, run.name.rfind('-') + 1), "manifest.json", run.identity);
  }
  // A batch counts as done when its settings and its checkpoint's identity are this run's.
  auto done = [&](const farm::Batch& b) {
    if (!farm::batch_file_complete(b, "settings", run.settings)) return false;
    auto f = h5::File::open_read(b.path);
    // A batch without the attribute was written before identities were recorded: it is this
    // run's only for a checkpoint that records none either (version 1 to 3, same name).
    const bool same = h5::has_attr(f.id(), "checkpoint_identity")
                          ? h5::get_attr_string(f.id(), "checkpoint_identity", b.path) == run.identity
                          : run.legacy;
    if (!same) spdlog::warn("{}: sampled from another checkpoint: computed again", b.path);
    return same;
  };
  auto report = farm::run(
      comm, run.plan, done,
      [&](const farm::Batch& b) {
        auto index = b.indices();  // the sample's own index: its noise stream and class
        for (auto& i : index) i += run.first_index;
        auto noise = sampling::Noise::per_item(static_cast<uint64_t>(cfg.eval.seed), index, l.device);
        auto [score, labels] = l.score_for(index);
        if (comm.rank() == 0) {
          // Inside a long batch (ODE solves, thousands of PC steps), rank 0 says how far it
          // is at most every 10 s: network evaluations so far and the time reached.
          auto t_last = std::chrono::steady_clock::now();
          auto nfe = std::make_shared<int64_t>(0);
          score = [inner = score, nfe, t_last, id = b.id](const torch::Tensor& x, const torch::Tensor& t) mutable {
            ++*nfe;
            const auto now = std::chrono::steady_clock::now();
            if (std::chrono::duration<double>(now - t_last).count() >= 10.0) {
              t_last = now;
              spdlog::info("batch {}: {} score evaluations so far, t = {:.4g}", id, *nfe, t.flatten()[0].item<double>());
            }
            return inner(x, t);
          };
        }
        auto res = sampling::sample(cfg, *l.sde, score, with_batch(b.count, item), noise);
        auto x = res.x.to(torch::kFloat32).cpu();
        if (cfg.is_image_data()) x = data::unscale(x, cfg.data.centered);
        const auto bad = (~torch::isfinite(x.reshape({b.count, -1})).all(1)).sum().item<int64_t>();
        SCORCH_CHECK(bad == 0, "batch {} (samples {}..{}): {} of {} samples hold NaN or Inf (the model at {} diverged "
                     "or the sampler is unstable): nothing written", b.id, b.begin, b.begin + b.count - 1, bad, b.count,
                     ckpt);
        farm::write_batch(b, "settings", run.settings, [&](hid_t f) {
          if (cfg.is_image_data()) {
            h5::write_tensor(f, "images", data::unit_to_images(x));
          } else {
            h5::write_tensor(f, "samples", x);
          }
          if (labels.defined()) h5::write_tensor(f, "labels", labels);
          h5::set_attr(f, "seed", cfg.eval.seed);
          h5::set_attr(f, "first_index", run.first_index);
          h5::set_attr(f, "sampler", sampling::short_name(cfg));
          h5::set_attr(f, "nfe", res.nfe);
          h5::set_attr(f, "step", l.step);
          h5::set_attr(f, "checkpoint", ckpt);
          h5::set_attr(f, "checkpoint_identity", run.identity);
          h5::set_attr(f, "device", l.device.str());
        });
        return farm::Outcome{res.nfe};
      });
  const double peak_mb = static_cast<double>(peak_rss_bytes()) / 1048576.0;
  auto peaks = comm.all_gather(torch::tensor({peak_mb}, torch::kFloat64));
  if (comm.rank() == 0) {
    const std::string summary = report.summary(what);
    spdlog::info("{}", summary);
    spdlog::info("peak resident memory per rank: {:.0f} MiB (max over ranks)", peaks.max().item<double>());
    nlohmann::json m{{"run", run.name},
                     {"checkpoint", ckpt},
                     {"checkpoint_sha256", l.r.ckpt.empty() ? std::string() : file_sha256_hex(l.r.ckpt)},
                     {"checkpoint_identity", run.identity},
                     {"weights", l.weights},
                     {"step", l.step},
                     {"seeds", run.seeds},
                     {"seed_set", run.set},
                     {"first_index", run.first_index},
                     {"settings", run.settings},
                     {"num_samples", cfg.eval.num_samples},
                     {"batch_size", cfg.eval.batch_size},
                     {"batches", report.batches},
                     {"item_shape", item},
                     {"dataset", cfg.is_image_data() ? "images" : "samples"},
                     {"complete", report.complete()},
                     {"last_run",
                      {{"ranks", comm.size()},
                       {"device", l.device.str()},
                       {"batches_done", report.done},
                       {"batches_skipped", report.skipped},
                       {"batches_per_rank", report.per_rank},
                       {"seconds", report.seconds},
                       {"items_per_s", report.items_per_s()},
                       {"nfe_mean", report.nfe_mean},
                       {"nfe_min", report.nfe_min},
                       {"nfe_max", report.nfe_max},
                       {"peak_rss_mib", peaks.max().item<double>()},
                       {"host", host_name()},
                       {"time", local_time_iso8601()}}}};
    io::write_text_atomically(run.dir + "/manifest.json", m.dump(2) + "\n");
    if (report.complete() && cfg.is_image_data()) {
      // Balanced classes: one column per class (sample i is of class i mod K), up to 10 rows.
      const int64_t K = cfg.sampling.class_label == "balanced" ? l.num_classes : 0;
      const int64_t count = K > 0 && cfg.eval.num_samples >= K ? std::min<int64_t>(cfg.eval.num_samples / K, 10) * K : 64;
      auto imgs = farm::read_batches(run.plan, "images", count);
      data::write_png_grid(run.dir + "/grid.png", imgs, imgs.size(1) < 64 ? 2 : 1, K > 0 ? K : 0);
      fmt::print("grid of the first {}{} -> {}/grid.png\n", imgs.size(0), K > 0 ? " (one column per class)" : "",
                 run.dir);
    }
    if (report.complete()) {
      fmt::print("{} {} ({}) -> {}\n", cfg.eval.num_samples, what, sampling::short_name(cfg), run.dir);
    } else {
      fmt::print("{}\n", report.stopped_message(run.dir));
    }
  }
  return report.complete() ? 0 : kStoppedExitCode;
}

}  // namespace

Command sample_command() {
  return make_command<Common>(
      "sample", "draw eval.num_samples samples (EMA weights) into <workdir>/samples/<run>/",
      [](CLI::App& app, Common& opt) {
        add_common(app, opt, true);
        app.footer(fmt::format(
            "Sampler: sampling.method = pc (sampling.predictor, sampling.corrector, sampling.snr), ode "
            "(sampling.rtol, sampling.atol), or the fast ddim (sampling.eta) | dpm_solver | heun (VE) with "
            "sampling.steps.\n"
            "Classes: sampling.class_label = <label> | balanced (sample i gets i mod K) with a class-conditional "
            "network (model.num_classes; classifier-free guidance sampling.guidance_scale) and/or classifier "
            "guidance (sampling.classifier = a --noise-conditional classifier, sampling.classifier_scale); each "
            "batch file then holds /labels.\n"
            "Output: <workdir>/samples/s<step>-<sampler>-<hash>/ (the hash covers every sampler setting, so two "
            "samplers never mix): batch_<id>.h5 per eval.batch_size samples (/index int64, /images uint8 [N,H,W,C] "
            "or /samples float32), manifest.json, grid.png (the first 64).\n"
            "Sample i draws its noise from stream (eval.seed, i): at one eval.batch_size the samples are bitwise the "
            "same on any number of ranks. eval.seed_sets = K draws K independent sets of eval.num_samples, set k "
            "holding samples k*n .. (k+1)*n-1 (EDM's seeds 0-49999, 50000-99999, ...), each a run of its own (set "
            "0 is the run of K = 1). Ranks take a static half of the batches, then claim the rest one by one "
            "(eval.balance = dynamic | static). A rerun skips finished batches. Memory per rank is bounded by one "
            "batch (eval.batch_size x the sampler's working set), whatever eval.num_samples.\n"
            "Exit status: 0 all samples written; {} stopped by SIGUSR1/SIGTERM/SIGINT after finishing the batches in "
            "hand (run the same command to finish).",
            kStoppedExitCode));
      },
      [](const Common& opt, dist::Communicator& comm) { return sample_sets(opt, comm); });
}

}  // namespace scorch::cli
