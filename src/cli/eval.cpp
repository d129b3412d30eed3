// `scorch eval`: evaluation at scale, through the farm (farm/farm.h).
//  - bpd: test-set bits/dim through the probability-flow ODE with the Hutchinson-Skilling
//    trace estimator. Images are dealt in batches of eval.batch_size by index; batch c of
//    repeat k draws its dequantisation and trace noise from stream (seed, k, c), so the
//    result does not depend on the world size. Per-image results go to one file per batch
//    under <workdir>/eval/bpd-<run>/; a rerun skips finished batches.
//  - fid-stats: pytorch-fid-compatible statistics (mu, sigma) of a data set, as .npz.
//  - fid: FID (and IS, KID where available) of a sample run (or a data set file) against
//    such statistics. Features are cached per batch beside the samples, and the run's own
//    statistics as fid_stats-<net>.npz, so a finished run never needs its images again.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/data/source.h"
#include "scorch/dist/backend.h"
#include "scorch/eval/features.h"
#include "scorch/io/hdf5.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/npz.h"
#include "scorch/likelihood/likelihood.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

// ---------------------------------------------------------------------------- bits/dim

int eval_bpd(const Common& opt, dist::Communicator& comm) {
  install_stop_handlers();
  auto l = load_score_model(opt, comm);
  const auto& cfg = l.r.cfg;
  const std::string& path = cfg.eval_data_path();
  SCORCH_CHECK(!path.empty(), "no evaluation data: set data.eval_path (or data.path)");
  const auto info = data::inspect(path, cfg.eval.bpd_num_images);
  data::check_matches(info, cfg);  // before anything is read
  // Read by index through the loader (data.source: memory, node_shared or stream).
  const auto source = data::open_source(info, data::source_options(cfg), &comm);
  const int64_t n = info.shape[0], R = cfg.eval.bpd_num_repeats;
  const auto item = cfg.item_shape();
  int64_t D = 1;
  for (auto d : item) D *= d;
  const double offset = likelihood::bits_per_dim_offset(cfg);
  const auto on = torch::TensorOptions().device(l.device);
  const std::string settings =
      fmt::format("data = {}\nitems = {}\nrepeats = {}\nrtol = {}\natol = {}\nhutchinson = {}\nseed = {}\nbatch = {}\n",
                  fs::absolute(path).string(), n, R, cfg.eval.rtol, cfg.eval.atol, cfg.eval.hutchinson, cfg.seed,
                  cfg.eval.batch_size);
  const std::string ckpt = l.r.ckpt.empty() ? "analytic" : fs::path(l.r.ckpt).filename().string();
  farm::Plan plan;
  plan.dir = fmt::format("{}/eval/bpd-s{:09d}-{}", l.r.workdir, l.step, fnv1a64_hex(ckpt + "\n" + settings).substr(0, 8));
  plan.num_items = n;
  plan.batch_size = cfg.eval.batch_size;
  plan.balance = cfg.eval.balance;
  plan.what = "bits/dim images";
  if (comm.rank() == 0) {
    spdlog::info("bits/dim of {} items of {} x {} repeats: probability-flow ODE, RK45 rtol {} atol {}, {} ranks on {}", n,
                 path, R, cfg.eval.rtol, cfg.eval.atol, comm.size(), l.device.str());
  }
  auto report = farm::run(
      comm, plan, [&](const farm::Batch& b) { return farm::batch_file_complete(b, "settings", settings); },
      [&](const farm::Batch& b) {
        const torch::Tensor rows = source->rows(b.begin, b.count);
        std::vector<torch::Tensor> bpd, exact;
        torch::Tensor latents;
        int64_t nfe = 0;
        for (int64_t k = 0; k < R; ++k) {
          auto gen = make_generator(l.device, derive_seed(static_cast<uint64_t>(cfg.seed), Stream::kLikelihood,
                                                          {static_cast<uint64_t>(k), static_cast<uint64_t>(b.id)}));
          torch::Tensor x;
          if (info.image) {
            x = data::scale(data::images_to_unit(rows.to(l.device),
                                                 torch::rand(with_batch(b.count, item), gen, on.dtype(torch::kFloat32))),
                            cfg.data.centered);
          } else {
            x = rows.to(l.device, torch::kFloat32);
          }
          auto e = cfg.eval.hutchinson == "gaussian"
                       ? torch::randn(with_batch(b.count, item), gen, on.dtype(torch::kFloat32))
                       : likelihood::rademacher(with_batch(b.count, item), gen);
          auto res = likelihood::logp_ode(l.score, *l.sde, x, e, {cfg.eval.rtol, cfg.eval.atol});
          nfe += res.nfe;
          bpd.push_back(likelihood::bits_per_dim(res.logp, D, offset).to(torch::kFloat64).cpu());
          if (l.gmm) {
            exact.push_back(likelihood::bits_per_dim(
                l.gmm->logp(*l.sde, x, torch::full({b.count}, likelihood::kLikelihoodEps, x.options())), D, 0.0)
                                .to(torch::kFloat64)
                                .cpu());
          }
          if (k == 0) latents = res.z.to(torch::kFloat32).cpu().contiguous();
        }
        farm::write_batch(b, "settings", settings, [&](hid_t f) {
          h5::write_tensor(f, "bpd", torch::stack(bpd, 1).contiguous());  // [b, R]
          h5::write_tensor(f, "latents", latents);                        // x(T) of repeat 0
          if (!exact.empty()) h5::write_tensor(f, "exact_bpd", torch::stack(exact, 1).contiguous());
          h5::set_attr(f, "nfe", nfe / R);
          h5::set_attr(f, "step", l.step);
        });
        return farm::Outcome{nfe / R};
      });
  if (stopped(comm, report, plan.dir)) return kStoppedExitCode;
  if (comm.rank() == 0) {
    spdlog::info("{}", report.summary("images"));
    auto all = farm::read_batches(plan, "bpd");  // [n, R]
    const auto per_image = all.mean(1);
    const double mean = per_image.mean().item<double>();
    const double se = n > 1 ? per_image.std().item<double>() / std::sqrt(static_cast<double>(n)) : 0.0;
    auto nfes = torch::zeros({report.batches}, torch::kFloat64);
    for (const auto& b : farm::batches(plan)) {
      auto f = h5::File::open_read(b.path);
      nfes[b.id] = static_cast<double>(h5::get_attr_int(f.id(), "nfe", b.path));
    }
    std::string out = fmt::format("{}/eval/bpd_{:09d}.h5", l.r.workdir, l.step);
    h5::write_atomically(out, [&](hid_t f) {
      h5::write_tensor(f, "bpd", all.t().contiguous());  // [R, N]
      h5::set_attr(f, "mean", mean);
      h5::set_attr(f, "standard_error", se);
      h5::set_attr(f, "step", l.step);
      h5::set_attr(f, "mean_nfe", nfes.mean().item<double>());
      h5::set_attr(f, "data", path);
      h5::set_attr(f, "batches", plan.dir);
      h5::write_string(f, "config", to_toml(cfg));
    });
    auto per_repeat = all.mean(0);
    for (int64_t k = 0; k < R; ++k) spdlog::info("repeat {}: {:.4f} bits/dim", k, per_repeat[k].item<double>());
    if (l.gmm) {
      const double exact_bpd = farm::read_batches(plan, "exact_bpd").select(1, 0).mean().item<double>();
      spdlog::info("analytic_gmm: exact {:.5f} bits/dim, ODE estimate {:.5f} (difference {:.2e})", exact_bpd,
                   all.select(1, 0).mean().item<double>(), all.select(1, 0).mean().item<double>() - exact_bpd);
    }
    fmt::print("eval: per-item results -> {} (per batch: {})\n", out, plan.dir);
    fmt::print("eval: {} items x {} repeats, NFE per solve mean {:.0f} (min {:.0f}, max {:.0f}): bpd {:.4f} +- {:.4f} "
               "(standard error)\n",
               n, R, nfes.mean().item<double>(), nfes.min().item<double>(), nfes.max().item<double>(), mean, se);
    fmt::print("bpd {:.4f}\n", mean);
    log_eval(l.r.workdir, l.step, "bpd", mean, se, nfes.mean().item<double>(),
             fmt::format("{} items of {}, {} repeats, RK45 rtol {} atol {}, hutchinson {}", n, path, R, cfg.eval.rtol,
                         cfg.eval.atol, cfg.eval.hutchinson));
  }
  return 0;
}

// ---------------------------------------------------------------------------- features

struct FidOptions {
  Common common;
  std::string data, out, ref, run, feature_net;
};

// The config (no checkpoint needed) and the feature network on this rank's device.
struct FeatureSetup {
  Resolved r;
  torch::Device device{torch::kCPU};
  std::unique_ptr<eval::FeatureNet> net;
};

FeatureSetup feature_setup(const FidOptions& opt, dist::Communicator& comm) {
  FeatureSetup s;
  s.r = resolve(opt.common, /*need_ckpt=*/false);
  s.device = dist::choose_device(s.r.cfg.dist.device, comm);
  const std::string path = opt.feature_net.empty() ? s.r.cfg.eval.feature_net : opt.feature_net;
  s.net = eval::load_feature_net(path, s.device);
  if (comm.rank() == 0) spdlog::info("feature network: {} on {}", s.net->describe(), s.device.str());
  return s;
}

eval::Features data_features(const FeatureSetup& s, dist::Communicator& comm, const std::string& data,
                             const std::string& dir) {
  // A data set's images by index through the loader: streamed, so only each batch's rows
  // are ever in memory.
  std::shared_ptr<data::Source> source =
      data::open_source(data, data::SourceOptions{"stream", s.r.cfg.data.cache_mb, 0}, &comm);
  SCORCH_CHECK(source->is_image(), "{}: no /images (FID, IS and KID are for image data)", data);
  const int64_t n = source->size();
  eval::ImageReader reader = [source](int64_t begin, int64_t count) {
    return data::images_to_unit(source->rows(begin, count));
  };
  auto t0 = std::chrono::steady_clock::now();
  auto feats = eval::compute_features(comm, *s.net, s.device, n, s.r.cfg.eval.batch_size, dir, s.r.cfg.eval.balance,
                                      reader);
  if (comm.rank() == 0) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("features of {} images of {}: {} ({:.0f} images/s overall, F = {})", n, data,
                 feats.report.summary("images"), static_cast<double>(n) / secs, feats.dim);
  }
  return feats;
}

// The feature network's id as an int64 [1] array, so that statistics remember what made them.
torch::Tensor net_id_array(const eval::FeatureNet& net) {
  return torch::tensor({static_cast<int64_t>(std::stoull(net.id(), nullptr, 16))}, torch::kInt64);
}

int fid_stats(const FidOptions& opt, dist::Communicator& comm) {
  install_stop_handlers();
  auto s = feature_setup(opt, comm);
  const std::string dir = opt.out + ".parts-" + s.net->id();
  auto feats = data_features(s, comm, opt.data, dir);
  if (comm.rank() == 0) {
    std::map<std::string, torch::Tensor> arrays{{"mu", feats.moments.mean()}, {"sigma", feats.moments.covariance()},
                                                {"n", torch::tensor({feats.moments.n}, torch::kInt64)},
                                                {"feature_net_id", net_id_array(*s.net)}};
    // The features themselves (float32) for KID, unless they would make the file huge.
    if (feats.moments.n * feats.dim * 4 <= (int64_t{1} << 30)) arrays["features"] = farm::read_batches(feats.plan, "features");
    io::write_npz(opt.out, arrays);
    fs::remove_all(dir);
    fmt::print("fid-stats: {} images of {}, {} features ({}) -> {}\n", feats.moments.n, opt.data, feats.dim,
               s.net->describe(), opt.out);
  }
  return 0;
}

// Reference statistics from any of the files users have: scorch's and pytorch-fid's / EDM's
// .npz (`mu`, `sigma`; scorch's also `features` for KID), or score_sde's statistics files
// (score_sde/evaluation.py writes `pool_3` features [N,F] and, where computed, `logits`):
// their moments are computed here in float64 (np.cov's unbiased covariance), and the
// features serve KID.
std::map<std::string, torch::Tensor> reference_statistics(const std::string& path) {
  auto ref = io::read_npz(path);
  if (!ref.count("mu") && !ref.count("sigma") && ref.count("pool_3")) {
    const auto pool = ref.at("pool_3");
    SCORCH_CHECK(pool.dim() == 2 && pool.size(0) >= 2 && pool.is_floating_point(),
                 "{}: 'pool_3' must hold features [N,F] of N >= 2 images (score_sde's statistics), got {} of {}", path,
                 c10::str(pool.sizes()), c10::str(pool.dtype()));
    SCORCH_CHECK(torch::isfinite(pool).all().item<bool>(), "{}: 'pool_3' holds NaN or Inf", path);
    eval::Moments m;
    m.add(pool);  // accumulated in float64
    ref["mu"] = m.mean();
    ref["sigma"] = m.covariance();
    if (!ref.count("features")) ref["features"] = pool;
    spdlog::info("{}: score_sde statistics ({} images, {} features): moments computed from its pool_3 features", path,
                 pool.size(0), pool.size(1));
  }
  SCORCH_CHECK(ref.count("mu") && ref.count("sigma"),
               "{}: neither 'mu' and 'sigma' arrays (scorch, pytorch-fid and EDM statistics) nor 'pool_3' features "
               "(score_sde statistics)", path);
  return ref;
}

int fid(const FidOptions& opt, dist::Communicator& comm) {
  install_stop_handlers();
  auto s = feature_setup(opt, comm);
  const auto& cfg = s.r.cfg;
  SCORCH_CHECK(!s.r.workdir.empty(), "eval fid: pass --workdir (its samples/ holds the sample runs; features are "
               "cached there)");
  auto ref = reference_statistics(opt.ref);
  SCORCH_CHECK(!ref.count("feature_net_id") || ref.at("feature_net_id").equal(net_id_array(*s.net)),
               "{} was made with another feature network than {} (its features are not comparable)", opt.ref,
               s.net->describe());
  eval::Features feats;
  std::string what, stats_file;
  farm::Plan samples;        // the sample run (when evaluating one)
  int64_t run_step = -1;      // its checkpoint's step (-1: evaluating a data set, not logged)
  double run_nfe = std::nan("");
  std::string run_settings;
  bool class_labels = false;  // its batches hold the requested /labels (guided sampling)
  if (!opt.data.empty()) {
    const std::string key = fnv1a64_hex(fs::absolute(opt.data).string() + "\n" + std::to_string(fs::file_size(opt.data)));
    feats = data_features(s, comm, opt.data,
                          fmt::format("{}/eval/features-{}-{}", s.r.workdir, s.net->id().substr(0, 8), key.substr(0, 8)));
    what = opt.data;
  } else {
    std::string run_dir;
    if (!opt.run.empty()) {
      run_dir = s.r.workdir + "/samples/" + opt.run;
    } else {
      const int64_t step = s.r.ckpt.empty() ? 0 : io::load_checkpoint_header(s.r.ckpt).step;
      run_dir = sample_run(s.r, step).dir;
    }
    const std::string manifest = run_dir + "/manifest.json";
    if (!fs::exists(manifest)) {
      std::string have;
      if (fs::is_directory(s.r.workdir + "/samples")) {
        for (const auto& e : fs::directory_iterator(s.r.workdir + "/samples")) {
          if (e.is_directory()) have += " " + e.path().filename().string();
        }
      }
      SCORCH_THROW("{}: no sample run for this checkpoint and these sampler settings (run `scorch sample` with the same "
                   "options, or pick one with --run NAME; runs here:{})",
                   run_dir, have.empty() ? " none" : have);
    }
    std::ifstream in(manifest);
    auto m = nlohmann::json::parse(in);
    SCORCH_CHECK(m.value("complete", false), "{}: the sample run is not finished: run `scorch sample` again to finish "
                 "it", run_dir);
    SCORCH_CHECK(m.value("dataset", "") == "images", "{}: the samples are points: FID, IS and KID are for images", run_dir);
    samples.dir = run_dir;
    run_step = m.value("step", int64_t{0});
    run_settings = fmt::format("{} samples of {}: {}", m.value("num_samples", int64_t{0}), m.value("run", std::string()),
                               m.value("settings", std::string()));
    if (m.contains("last_run") && m["last_run"].contains("nfe_mean")) run_nfe = m["last_run"]["nfe_mean"].get<double>();
    samples.num_items = m.at("num_samples").get<int64_t>();
    samples.batch_size = m.at("batch_size").get<int64_t>();
    const auto sample_batches = farm::batches(samples);
    auto reader = [&](int64_t begin, int64_t count) {
      const auto& b = sample_batches.at(static_cast<size_t>(begin / samples.batch_size));
      SCORCH_CHECK(b.begin == begin && b.count == count, "feature batch {}+{} is not sample batch {}", begin, count, b.id);
      auto f = h5::File::open_read(b.path);
      return data::images_to_unit(h5::read_tensor(f.id(), "images", b.path));
    };
    auto t0 = std::chrono::steady_clock::now();
    feats = eval::compute_features(comm, *s.net, s.device, samples.num_items, samples.batch_size,
                                   run_dir + "/features-" + s.net->id(), cfg.eval.balance, reader);
    if (comm.rank() == 0) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      spdlog::info("features: {} ({:.0f} images/s overall)", feats.report.summary("images"),
                   static_cast<double>(samples.num_items) / secs);
    }
    what = run_dir;
    stats_file = run_dir + "/fid_stats-" + s.net->id() + ".npz";
    auto f0 = h5::File::open_read(sample_batches.front().path);
    class_labels = h5::exists(f0.id(), "labels");
  }
  if (comm.rank() == 0) {
    auto mu = feats.moments.mean(), sigma = feats.moments.covariance();
    if (!stats_file.empty()) io::write_npz(stats_file, {{"mu", mu}, {"sigma", sigma}, {"feature_net_id", net_id_array(*s.net)}});
    SCORCH_CHECK(ref.at("mu").numel() == feats.dim, "{} holds statistics of {} features; {} gives {} (another feature "
                 "network?)", opt.ref, ref.at("mu").numel(), s.net->describe(), feats.dim);
    const auto f = eval::frechet_distance(mu, sigma, ref.at("mu"), ref.at("sigma"));
    std::string line = fmt::format("fid {:.6f}", f.value);
    const std::string against = fmt::format("; against {} with {}", opt.ref, s.net->describe());
    if (run_step >= 0) log_eval(s.r.workdir, run_step, "fid", f.value, std::nan(""), run_nfe, run_settings + against);
    // FID's estimator is biased upwards by about 1/n (Chong and Forsyth, 2020): a figure from
    // fewer samples than the 50,000 of published FID-50k is labelled as such.
    const std::string small_n =
        feats.moments.n < 50000
            ? fmt::format(" (from {} samples, not 50,000: biased upwards, not comparable to a published FID-50k)",
                          feats.moments.n)
            : std::string();
    spdlog::info("FID of {} ({} images) against {}: {:.6f}{}{}", what, feats.moments.n, opt.ref, f.value,
                 f.used_eps ? " (eps added to the covariances' diagonals)" : "", small_n);
    if (feats.has_logits && feats.moments.n >= cfg.eval.is_splits) {
      const auto is = eval::inception_score(farm::read_batches(feats.plan, "logits"), cfg.eval.is_splits);
      spdlog::info("Inception Score ({} splits): {:.4f} +- {:.4f}", cfg.eval.is_splits, is.mean, is.std);
      line += fmt::format(" is {:.4f}", is.mean);
      if (run_step >= 0) log_eval(s.r.workdir, run_step, "is", is.mean, is.std, run_nfe, run_settings + against);
    }
    if (class_labels && feats.has_logits) {
      // Guided samples: how often the feature network's class is the requested one.
      auto want = farm::read_batches(samples, "labels").to(torch::kInt64);
      auto got = farm::read_batches(feats.plan, "logits").argmax(1);
      const double acc = (want == got).to(torch::kFloat64).mean().item<double>();
      spdlog::info("class accuracy of the guided samples (requested label = the feature network's class): {:.2f}% "
                   "of {}", 100 * acc, want.size(0));
      line += fmt::format(" acc {:.4f}", acc);
      if (run_step >= 0) log_eval(s.r.workdir, run_step, "acc", acc, std::nan(""), run_nfe, run_settings + against);
    }
    if (ref.count("features")) {
      const auto kid = eval::kernel_inception_distance(farm::read_batches(feats.plan, "features"), ref.at("features"),
                                                       cfg.eval.kid_subsets, cfg.eval.kid_subset_size,
                                                       static_cast<uint64_t>(cfg.eval.seed));
      spdlog::info("KID ({} subsets of {}): {:.6f} +- {:.6f}", cfg.eval.kid_subsets, cfg.eval.kid_subset_size, kid.mean,
                   kid.std);
      line += fmt::format(" kid {:.6f}", kid.mean);
      if (run_step >= 0) log_eval(s.r.workdir, run_step, "kid", kid.mean, kid.std, run_nfe, run_settings + against);
    } else {
      spdlog::info("KID: {} has no 'features' array (pytorch-fid statistics do not): not computed", opt.ref);
    }
    if (!stats_file.empty()) fmt::print("statistics of the run -> {}\n", stats_file);
    fmt::print("{}\n", line);
  }
  return 0;
}

void add_feature_options(CLI::App& app, FidOptions& o) {
  add_common(app, o.common, true);
  app.add_option("--feature-net", o.feature_net,
                 "feature network (default eval.feature_net): TorchScript .pt or a `scorch train-classifier` .h5");
}

}  // namespace

Command eval_command() {
  auto opt = std::make_shared<Common>();
  auto fo = std::make_shared<FidOptions>();
  auto subs = std::make_shared<std::array<CLI::App*, 3>>();
  Command c;
  c.name = "eval";
  c.help = "evaluate a checkpoint or its samples: bits/dim, FID / IS / KID";
  c.declare = [opt, fo, subs](CLI::App& app) {
    app.require_subcommand(1);
    auto* bpd = app.add_subcommand("bpd", "test-set bits/dim through the probability-flow ODE (Hutchinson trace)");
    add_common(*bpd, *opt, true);
    bpd->footer(fmt::format(
        "Data: data.eval_path (default data.path), eval.bpd_num_images (0: all), eval.bpd_num_repeats, eval.rtol / "
        "eval.atol, eval.hutchinson (rademacher | gaussian). Images are dealt over ranks in batches of eval.batch_size "
        "(eval.balance); per-image results go to <workdir>/eval/bpd-<run>/batch_<id>.h5 (/index, /bpd [b,repeats], "
        "/latents) and a rerun skips finished batches. Then <workdir>/eval/bpd_<step>.h5 (/bpd [repeats,N], mean, "
        "standard error) and a last line `bpd <mean>`. Exit status {} if stopped by a signal.",
        kStoppedExitCode));
    auto* stats = app.add_subcommand("fid-stats", "pytorch-fid-compatible statistics (mu, sigma) of a data set file");
    add_feature_options(*stats, *fo);
    stats->add_option("--data", fo->data, "HDF5 data set with /images")->required()->check(CLI::ExistingFile);
    stats->add_option("--out", fo->out, "output .npz: mu, sigma (float64), n, and the features (float32) for KID")
        ->required();
    stats->footer("Features per batch of eval.batch_size are kept in <out>.parts-<net>/ until the .npz is written, so "
                  "a killed run resumes.");
    auto* fidc = app.add_subcommand("fid", "FID (and IS, KID) of the samples in --workdir against reference statistics");
    add_feature_options(*fidc, *fo);
    fidc->add_option("--ref", fo->ref, "reference statistics .npz: scorch eval fid-stats', pytorch-fid's or EDM's (mu, sigma), or "
                    "score_sde's (pool_3 features; moments computed in float64)")
        ->required()
        ->check(CLI::ExistingFile);
    fidc->add_option("--data", fo->data, "compare this data set file instead of the samples")->check(CLI::ExistingFile);
    fidc->add_option("--run", fo->run, "sample run under <workdir>/samples/ (default: the one of this checkpoint and "
                     "these sampler settings)");
    fidc->footer("The samples' features are cached per batch in <run>/features-<net>/ and their statistics in "
                 "<run>/fid_stats-<net>.npz. IS needs a network with logits; KID needs reference features (in the "
                 ".npz from scorch eval fid-stats). Prints a last line `fid <value> [is <value>] [kid <value>]`.");
    (*subs)[0] = bpd;
    (*subs)[1] = stats;
    (*subs)[2] = fidc;
  };
  c.run = [opt, fo, subs](dist::Communicator& comm) {
    if (*(*subs)[0]) return eval_bpd(*opt, comm);
    if (*(*subs)[1]) return fid_stats(*fo, comm);
    return fid(*fo, comm);
  };
  return c;
}

}  // namespace scorch::cli
