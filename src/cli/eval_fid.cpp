// `scorch eval fid-stats` and `scorch eval fid`: pytorch-fid-compatible statistics (mu,
// sigma) of a data set, and FID (IS, KID, guided-class accuracy where available) of a sample
// run, its seed sets or a data set file against reference statistics (scorch's, pytorch-fid's,
// EDM's or score_sde's). Features come from eval/feature_net.h through the farm, cached per
// batch beside the samples, and the run's own statistics as fid_stats-<net>.npz, so a
// finished run never needs its images again. Every result is logged with its provenance.
#include <CLI/CLI.hpp>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "scorch/cli/common.h"
#include "scorch/cli/evaluation.h"
#include "scorch/cli/provenance.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/data/source.h"
#include "scorch/dist/backend.h"
#include "scorch/eval/features.h"
#include "scorch/eval/reference.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/hdf5.h"
#include "scorch/io/npz.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

// The config (no checkpoint needed) and the feature network on this rank's device.
struct FeatureSetup {
  Resolved r;
  torch::Device device{torch::kCPU};
  std::string path;  // the feature network's file
  std::unique_ptr<eval::FeatureNet> net;
};

FeatureSetup feature_setup(const FidOptions& opt, dist::Communicator& comm) {
  FeatureSetup s;
  s.r = resolve(opt.common, /*need_ckpt=*/false);
  s.device = dist::choose_device(s.r.cfg.dist.device, comm);
  s.path = opt.feature_net.empty() ? s.r.cfg.eval.feature_net : opt.feature_net;
  s.net = eval::load_feature_net(s.path, s.device);
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

}  // namespace

int eval_fid_stats(const FidOptions& opt, dist::Communicator& comm) {
  install_stop_handlers();
  auto s = feature_setup(opt, comm);
  const std::string dir = opt.out + ".parts-" + s.net->id();
  eval::Features feats;
  try {
    feats = data_features(s, comm, opt.data, dir);
  } catch (...) {
    // A failure before any feature batch was written leaves no empty cache folder behind
    // (its farm lock only); finished batches stay for the rerun.
    if (comm.rank() == 0) {
      bool any = false;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec)) any = any || e.path().extension() == ".h5";
      if (!any) fs::remove_all(dir, ec);
    }
    throw;
  }
  if (comm.rank() == 0) {
    SCORCH_CHECK(!stop_requested(), "fid-stats: stopped by a signal before {} was written (the features stay cached "
                 "in {})", opt.out, dir);
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

namespace {

// What one evaluation gives: the results (FID first), the last line's text, its provenance.
struct Evaluated {
  std::vector<Result> results;
  std::string line;
  Provenance p;
  std::string record;
};

// The features of one sample run (collective) and what it was sampled from (rank 0).
struct SampleRunFeatures {
  eval::Features feats;
  farm::Plan samples;
  int64_t step = 0;
  bool class_labels = false;  // its batches hold the requested /labels (guided sampling)
};

SampleRunFeatures sample_run_features(const FeatureSetup& s, dist::Communicator& comm, const std::string& run_dir,
                                      Provenance& p) {
  SampleRunFeatures out;
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
  out.samples.dir = run_dir;
  out.step = m.value("step", int64_t{0});
  out.samples.num_items = m.at("num_samples").get<int64_t>();
  out.samples.batch_size = m.at("batch_size").get<int64_t>();
  const auto sample_batches = farm::batches(out.samples);
  // What the samples came from (the manifest; a run sampled before provenance was recorded
  // has its checkpoint hashed now, if it is still there).
  p.checkpoint = m.value("checkpoint", std::string());
  p.checkpoint_sha256 = m.value("checkpoint_sha256", std::string());
  p.checkpoint_identity = m.value("checkpoint_identity", std::string());
  if (comm.rank() == 0 && p.checkpoint_sha256.empty() && fs::is_regular_file(p.checkpoint)) {
    p.checkpoint_sha256 = file_sha256_hex(p.checkpoint);
  }
  p.weights = m.value("weights", std::string("EMA where the checkpoint holds one (sampled before scorch recorded "
                                             "which)"));
  p.sampler = m.value("settings", std::string());
  p.seeds = m.value("seeds", std::string());
  p.n = out.samples.num_items;
  p.settings = fmt::format("run = {}\n", m.value("run", std::string()));
  if (comm.rank() == 0) {
    // Score evaluations per sample, from the batch files (every batch, whichever run made it).
    double sum = 0;
    for (const auto& b : sample_batches) {
      auto f = h5::File::open_read(b.path);
      const double nfe = static_cast<double>(h5::get_attr_int(f.id(), "nfe", b.path));
      sum += nfe * static_cast<double>(b.count);
      p.nfe_min = std::isnan(p.nfe_min) ? nfe : std::min(p.nfe_min, nfe);
      p.nfe_max = std::isnan(p.nfe_max) ? nfe : std::max(p.nfe_max, nfe);
    }
    p.nfe_mean = sum / static_cast<double>(out.samples.num_items);
  }
  auto reader = [&](int64_t begin, int64_t count) {
    const auto& b = sample_batches.at(static_cast<size_t>(begin / out.samples.batch_size));
    SCORCH_CHECK(b.begin == begin && b.count == count, "feature batch {}+{} is not sample batch {}", begin, count, b.id);
    auto f = h5::File::open_read(b.path);
    return data::images_to_unit(h5::read_tensor(f.id(), "images", b.path));
  };
  auto t0 = std::chrono::steady_clock::now();
  out.feats = eval::compute_features(comm, *s.net, s.device, out.samples.num_items, out.samples.batch_size,
                                     run_dir + "/features-" + s.net->id(), s.r.cfg.eval.balance, reader);
  if (comm.rank() == 0) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("features: {} ({:.0f} images/s overall)", out.feats.report.summary("images"),
                 static_cast<double>(out.samples.num_items) / secs);
  }
  auto f0 = h5::File::open_read(sample_batches.front().path);
  out.class_labels = h5::exists(f0.id(), "labels");
  return out;
}

// FID, IS, accuracy and KID of features against the reference. Rank 0.
Evaluated evaluate(const FeatureSetup& s, dist::Communicator& comm, const FidOptions& opt,
                   const std::map<std::string, torch::Tensor>& ref, const eval::Features& feats,
                   const farm::Plan* samples, bool class_labels, const std::string& what) {
  const auto& cfg = s.r.cfg;
  Evaluated e;
  auto mu = feats.moments.mean(), sigma = feats.moments.covariance();
  SCORCH_CHECK(ref.at("mu").numel() == feats.dim, "{} holds statistics of {} features; {} gives {} (another feature "
               "network?)", opt.ref, ref.at("mu").numel(), s.net->describe(), feats.dim);
  if (samples) {
    const std::string stats = samples->dir + "/fid_stats-" + s.net->id() + ".npz";
    io::write_npz(stats, {{"mu", mu}, {"sigma", sigma}, {"feature_net_id", net_id_array(*s.net)}});
    fmt::print("statistics of the run -> {}\n", stats);
  }
  const auto f = eval::frechet_distance(mu, sigma, ref.at("mu"), ref.at("sigma"));
  e.results.push_back({"fid", f.value});
  e.line = fmt::format("fid {:.6f}", f.value);
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
    e.line += fmt::format(" is {:.4f}", is.mean);
    e.results.push_back({"is", is.mean, is.std});
    e.p.settings += fmt::format("eval.is_splits = {}\n", cfg.eval.is_splits);
  }
  if (samples && class_labels && feats.has_logits) {
    // Guided samples: how often the feature network's class is the requested one.
    auto want = farm::read_batches(*samples, "labels").to(torch::kInt64);
    auto got = farm::read_batches(feats.plan, "logits").argmax(1);
    const double acc = (want == got).to(torch::kFloat64).mean().item<double>();
    spdlog::info("class accuracy of the guided samples (requested label = the feature network's class): {:.2f}% "
                 "of {}", 100 * acc, want.size(0));
    e.line += fmt::format(" acc {:.4f}", acc);
    e.results.push_back({"acc", acc});
  }
  if (ref.count("features")) {
    const auto kid = eval::kernel_inception_distance(farm::read_batches(feats.plan, "features"), ref.at("features"),
                                                     cfg.eval.kid_subsets, cfg.eval.kid_subset_size,
                                                     static_cast<uint64_t>(cfg.eval.seed));
    spdlog::info("KID ({} subsets of {}): {:.6f} +- {:.6f}", cfg.eval.kid_subsets, cfg.eval.kid_subset_size, kid.mean,
                 kid.std);
    e.line += fmt::format(" kid {:.6f}", kid.mean);
    e.results.push_back({"kid", kid.mean, kid.std});
    e.p.settings += fmt::format("eval.kid_subsets = {}\neval.kid_subset_size = {}\nkid seed = eval.seed = {}\n",
                                cfg.eval.kid_subsets, cfg.eval.kid_subset_size, cfg.eval.seed);
  } else {
    spdlog::info("KID: {} has no 'features' array (pytorch-fid statistics do not): not computed", opt.ref);
  }
  e.p.settings += fmt::format("ranks = {}\ndevice = {}\n", comm.size(), s.device.str());
  return e;
}

}  // namespace

int eval_fid(const FidOptions& opt, dist::Communicator& comm, std::string* record_out) {
  install_stop_handlers();
  auto s = feature_setup(opt, comm);
  const auto& cfg = s.r.cfg;
  SCORCH_CHECK(!s.r.workdir.empty(), "eval fid: pass --workdir (its samples/ holds the sample runs; features are "
               "cached there)");
  auto ref = eval::read_reference_stats(opt.ref);
  SCORCH_CHECK(!ref.count("feature_net_id") || ref.at("feature_net_id").equal(net_id_array(*s.net)),
               "{} was made with another feature network than {} (its features are not comparable)", opt.ref,
               s.net->describe());
  // The inputs every result names (rank 0).
  Provenance common;
  if (comm.rank() == 0) {
    common.feature_net = fs::absolute(s.path).string();
    common.feature_net_sha256 = file_sha256_hex(s.path);
    common.feature_net_interface = s.net->interface();
    common.reference = fs::absolute(opt.ref).string();
    common.reference_sha256 = file_sha256_hex(opt.ref);
    if (ref.count("n")) {
      common.reference_n = ref.at("n").flatten()[0].item<int64_t>();
    } else if (ref.count("features")) {
      common.reference_n = ref.at("features").size(0);
    }
  }
  auto with_common = [&](Provenance p, const std::string& settings) {
    p.feature_net = common.feature_net;
    p.feature_net_sha256 = common.feature_net_sha256;
    p.feature_net_interface = common.feature_net_interface;
    p.reference = common.reference;
    p.reference_sha256 = common.reference_sha256;
    p.reference_n = common.reference_n;
    p.settings += settings;
    return p;
  };
  const std::string tag = s.net->id().substr(0, 8) + "-" + common.reference_sha256.substr(0, 8);
  if (!opt.data.empty()) {
    const std::string key = fnv1a64_hex(fs::absolute(opt.data).string() + "\n" + std::to_string(fs::file_size(opt.data)));
    auto feats = data_features(s, comm, opt.data,
                               fmt::format("{}/eval/features-{}-{}", s.r.workdir, s.net->id().substr(0, 8),
                                           key.substr(0, 8)));
    if (comm.rank() == 0) {
      auto e = evaluate(s, comm, opt, ref, feats, nullptr, false, opt.data);
      Provenance p;
      p.data = fs::absolute(opt.data).string();
      p.data_sha256 = file_sha256_hex(opt.data);
      p.n = feats.moments.n;
      const std::string record = fmt::format("{}/eval/fid-{}-{}-{}.json", s.r.workdir, s.net->id().substr(0, 8),
                                             key.substr(0, 8), common.reference_sha256.substr(0, 8));
      if (record_out) *record_out = record;
      log_results(s.r.workdir, -1, e.results, with_common(p, e.p.settings), record);
      fmt::print("provenance -> {} (and rows of {}/eval_log.csv)\n", record, s.r.workdir);
      fmt::print("{}\n", e.line);
    }
    return 0;
  }
  // The sample runs: --run, or the K seed sets of this checkpoint and these settings.
  std::vector<std::string> runs;
  if (!opt.run.empty()) {
    runs.push_back(s.r.workdir + "/samples/" + opt.run);
  } else {
    const int64_t step = s.r.ckpt.empty() ? 0 : io::load_checkpoint_header(s.r.ckpt).step;
    for (int64_t k = 0; k < cfg.eval.seed_sets; ++k) runs.push_back(sample_run(s.r, step, k).dir);
  }
  const std::string final_record = runs.size() == 1 ? fmt::format("{}/eval-{}.json", runs[0], tag)
                                                    : fmt::format("{}/eval-{}-sets{}.json", runs[0], tag, runs.size());
  if (record_out) *record_out = final_record;
  if (opt.reuse_records && record_exists(comm, final_record, "", "", opt.run.empty() ? s.r.ckpt_identity : "")) {
    if (comm.rank() == 0) fmt::print("eval: {} already evaluated -> {}\n", runs[0], final_record);
    return 0;
  }
  std::vector<Evaluated> sets;
  int64_t step = 0;
  for (size_t k = 0; k < runs.size(); ++k) {
    if (comm.rank() == 0 && runs.size() > 1) spdlog::info("seed set {} of {}: {}", k + 1, runs.size(), runs[k]);
    Provenance p;
    auto rf = sample_run_features(s, comm, runs[k], p);
    step = rf.step;
    if (comm.rank() != 0) continue;
    auto e = evaluate(s, comm, opt, ref, rf.feats, &rf.samples, rf.class_labels, runs[k]);
    e.p = with_common(p, e.p.settings);
    e.record = fmt::format("{}/eval-{}.json", runs[k], tag);
    log_results(s.r.workdir, step, e.results, e.p, e.record);
    fmt::print("{}provenance -> {} (and rows of {}/eval_log.csv)\n",
               runs.size() > 1 ? fmt::format("seed set {}: {}; ", k + 1, e.line) : std::string(), e.record,
               s.r.workdir);
    sets.push_back(std::move(e));
  }
  if (comm.rank() != 0) return 0;
  if (runs.size() == 1) {
    fmt::print("{}\n", sets[0].line);
    return 0;
  }
  // The protocol's summary (EDM reports the minimum of three FIDs; the mean and standard
  // deviation say how far one set moves): per metric over the sets, a row each of
  // <metric>_min, <metric>_mean (standard error: the standard deviation) and one record.
  std::vector<Result> summary;
  std::string line;
  nlohmann::json per_set = nlohmann::json::array();
  for (const auto& e : sets) {
    nlohmann::json o;
    for (const auto& r : e.results) o[r.metric] = r.value;
    o["record"] = e.record;
    per_set.push_back(o);
  }
  for (size_t m = 0; m < sets[0].results.size(); ++m) {
    const std::string metric = sets[0].results[m].metric;
    std::vector<double> v;
    for (const auto& e : sets) v.push_back(e.results.at(m).value);
    const auto t = torch::tensor(v, torch::kFloat64);
    const double mn = t.min().item<double>(), mean = t.mean().item<double>(), sd = t.std().item<double>();
    spdlog::info("{} over {} seed sets: {} -> min {:.6f}, mean {:.6f}, standard deviation {:.6f}", metric, v.size(),
                 fmt::join(v, ", "), mn, mean, sd);
    summary.push_back({metric + "_min", mn});
    summary.push_back({metric + "_mean", mean, sd});
    line += fmt::format("{}{} {:.6f} {}_min {:.6f} {}_std {:.6f}", line.empty() ? "" : " ", metric, mean, metric, mn,
                        metric, sd);
  }
  Provenance p = sets[0].p;
  p.n = sets[0].p.n * static_cast<int64_t>(sets.size());
  p.seeds = fmt::format("{} seed sets of {} samples: sets[k] = samples k*{} .. (k+1)*{}-1 (eval.seed = {})", sets.size(),
                        sets[0].p.n, sets[0].p.n, sets[0].p.n, cfg.eval.seed);
  p.settings += "seed_sets = " + std::to_string(sets.size()) + "\n";
  p.nfe_mean = 0;
  for (const auto& e : sets) {
    p.nfe_mean += e.p.nfe_mean / static_cast<double>(sets.size());  // sets of equal size
    p.nfe_min = std::min(p.nfe_min, e.p.nfe_min);
    p.nfe_max = std::max(p.nfe_max, e.p.nfe_max);
  }
  log_results(s.r.workdir, step, summary, p, final_record, per_set.dump());
  fmt::print("provenance of the {} sets -> {}\n", sets.size(), final_record);
  fmt::print("{}\n", line);
  return 0;
}

void add_feature_options(CLI::App& app, FidOptions& o) {
  add_common(app, o.common, true);
  app.add_option("--feature-net", o.feature_net,
                 "feature network (default eval.feature_net): a `scorch train-classifier` .h5 (the images' own "
                 "channels, float [0,1]) or TorchScript, recognised by its forward's signature: NVIDIA's TF-Inception "
                 "(inception-2015-12-05.pt: forward(img, return_features), fed uint8 NCHW RGB in [0,255] at the "
                 "images' size, resized to 299 by the network; IS from its probabilities without output bias), a "
                 "traced or scripted pytorch-fid InceptionV3 (a list output: fed float NCHW RGB in [0,1], pool3 "
                 "[B,2048,1,1] are the features; no IS), or any module float [0,1] -> [B,F] or (features, logits). "
                 "Grey images are repeated to 3 channels for TorchScript networks");
}

}  // namespace scorch::cli
