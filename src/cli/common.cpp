// Shared pieces of the subcommands (see cli/common.h).
#include "scorch/cli/common.h"

#include "scorch/cli/provenance.h"
#include "scorch/core/version.h"
#include "scorch/io/files.h"

#include "scorch/eval/feature_net.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/dist/backend.h"
#include "scorch/io/checkpoint.h"
#include "scorch/sampling/sampler.h"

namespace fs = std::filesystem;

namespace scorch::cli {

void add_common(CLI::App& app, Common& c, bool ckpt) {
  app.add_option("--config", c.config, "TOML job file (e.g. jobs/fashion_mnist.toml)")->check(CLI::ExistingFile);
  app.add_option("--workdir", c.workdir, "run directory: config.toml, checkpoints/, samples/, eval/");
  app.add_option("--set", c.sets,
                 "override one key: --set section.key=VALUE (a TOML value: 0.5, true, [1,2], \"s\"; bare words "
                 "are strings). Repeatable; applied after --config. Devices: --set dist.device=cuda|cpu")
      ->type_name("KEY=VALUE");
  if (ckpt) app.add_option("--ckpt", c.ckpt, "checkpoint file (default: the newest in --workdir/checkpoints)");
}

Config config_of(const std::string& toml, const std::string& source) {
  Config c;
  c.sources.push_back("defaults");
  apply_toml_string(c, toml, source);
  derive(c);
  return c;
}

namespace {

std::string changes_text(const std::vector<KeyChange>& changes, const char* before, const char* after) {
  std::string s;
  for (const auto& c : changes) s += fmt::format("{}{} = {} ({}), {} ({})", s.empty() ? "" : "; ", c.key, c.before,
                                                 before, c.after, after);
  return s;
}

}  // namespace

std::string usable_checkpoint_hint(const std::string& workdir, const std::string& bad) {
  const auto all = io::list_checkpoints(workdir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const auto& [step, path] = *it;
    std::error_code ec;
    if (path == bad || fs::equivalent(path, bad, ec)) continue;
    try {
      if (io::checkpoint_problem(io::load_checkpoint(path), path).empty()) {
        return fmt::format("the newest checkpoint that verifies is {} (step {}): pass --ckpt {} (train sets the "
                           "damaged file aside itself)", path, step, path);
      }
    } catch (const std::exception&) {
    }
  }
  return fmt::format("no other checkpoint in '{}/checkpoints' verifies", workdir);
}

Resolved resolve(const Common& opt, bool need_ckpt) {
  Resolved r;
  r.workdir = opt.workdir;
  r.ckpt = opt.ckpt;
  const bool implicit = r.ckpt.empty() && !r.workdir.empty();
  if (implicit) r.ckpt = io::latest_checkpoint(r.workdir);
  if (r.workdir.empty() && !r.ckpt.empty()) {
    auto dir = fs::absolute(r.ckpt).parent_path();
    r.workdir = (dir.filename() == "checkpoints" ? dir.parent_path() : dir).string();
  }
  Config cfg;
  cfg.sources.push_back("defaults");
  if (!r.ckpt.empty()) {
    try {
      const auto header = io::load_checkpoint_header(r.ckpt);
      r.ckpt_config = header.config_toml;
      r.ckpt_step = header.step;
      r.ckpt_identity = header.identity.empty() ? io::checkpoint_identity(r.ckpt) : header.identity;
      r.ckpt_identity_stored = !header.identity.empty();
    } catch (const std::exception& e) {
      if (!implicit) throw;
      SCORCH_THROW("the newest checkpoint of '{}' cannot be used: {}. {}", r.workdir, e.what(),
                   usable_checkpoint_hint(r.workdir, r.ckpt));
    }
    const std::string& stored = r.ckpt_config;
    apply_toml_string(cfg, stored, r.ckpt + ":/config");
    // A checkpoint of another model among this run's: its network keys must be the run's
    // (<workdir>/config.toml, written by train).
    const std::string run_toml = r.workdir + "/config.toml";
    if (fs::is_regular_file(run_toml)) {
      std::ifstream in(run_toml);
      const std::string text((std::istreambuf_iterator<char>(in)), {});
      const auto diff = fixed_key_changes(config_of(text, run_toml), config_of(stored, r.ckpt + ":/config"));
      SCORCH_CHECK(diff.empty(), "{} is not a checkpoint of the run in '{}': {}. It belongs to another model; pass "
                   "the --workdir it was trained in{}", r.ckpt, r.workdir, changes_text(diff, "config.toml", "checkpoint"),
                   implicit ? fmt::format(", or move it out of {}/checkpoints", r.workdir) : std::string());
    }
  }
  if (!opt.config.empty()) apply_toml_file(cfg, opt.config);
  for (const auto& s : opt.sets) apply_override(cfg, s);
  derive(cfg);
  validate(cfg);
  r.cfg = cfg;
  // analytic_gmm is an exact score: it needs no checkpoint.
  if (need_ckpt && cfg.model.name != "analytic_gmm") {
    SCORCH_CHECK(!r.ckpt.empty(), "no checkpoint: pass --ckpt FILE, or a --workdir whose checkpoints/ holds one{}",
                 r.workdir.empty() ? "" : fmt::format(" ('{}/checkpoints' has none)", r.workdir));
  }
  return r;
}

namespace {

// Fills l.guidance from sampling.* (class-conditional scores, guidance scale, classifier).
void setup_guidance(Loaded& l) {
  const auto& cfg = l.r.cfg;
  const auto& sc = cfg.sampling;
  auto& g = l.guidance;
  g.unconditional = l.score;
  g.guidance_scale = sc.guidance_scale;
  g.classifier_scale = sc.classifier_scale;
  if (cfg.model.num_classes > 0) {
    g.num_classes = l.num_classes = cfg.model.num_classes;
    if (l.gmm) {
      g.conditional = [m = l.gmm.get(), s = l.sde.get()](const torch::Tensor& x, const torch::Tensor& t,
                                                         const torch::Tensor& c) { return m->class_score(*s, x, t, c); };
    } else {
      g.conditional = models::make_class_score_fn(*l.net, *l.sde, cfg.training.continuous);
    }
  }
  if (sc.classifier.empty()) return;
  if (sc.classifier == "exact") {
    SCORCH_CHECK(l.gmm != nullptr, "sampling.classifier = \"exact\" is the analytic_gmm's posterior; a network "
                 "needs a classifier checkpoint (scorch train-classifier --noise-conditional)");
    g.classifier = [m = l.gmm.get(), s = l.sde.get()](const torch::Tensor& x, const torch::Tensor& t) {
      return m->log_posterior(*s, x, t);
    };
    if (l.num_classes == 0) l.num_classes = l.gmm->num_classes();
    return;
  }
  l.classifier = eval::load_classifier(sc.classifier, l.device);
  const auto& shape = l.classifier->shape();
  SCORCH_CHECK(shape.noise_conditional, "sampling.classifier = {}: this classifier was trained on clean data; "
               "classifier guidance needs p(c | x_t, t): scorch train-classifier --noise-conditional", sc.classifier);
  SCORCH_CHECK(l.num_classes == 0 || l.num_classes == shape.classes,
               "sampling.classifier = {} has {} classes but model.num_classes = {}", sc.classifier, shape.classes,
               l.num_classes);
  l.num_classes = shape.classes;
  g.classifier = [net = l.classifier](const torch::Tensor& x, const torch::Tensor& t) mutable {
    return torch::log_softmax(net->forward(x, t).second.to(torch::kFloat32), 1);
  };
  spdlog::info("classifier guidance: {} ({} classes), scale {}", sc.classifier, shape.classes, sc.classifier_scale);
}

}  // namespace

Loaded load_score_model(const Common& opt, dist::Communicator& comm) {
  if (comm.rank() == 0) spdlog::info("{}", build_info_line());
  Loaded l;
  l.r = resolve(opt, /*need_ckpt=*/true);
  // Outputs go under the workdir: a read-only one fails now, not after loading the model.
  if (!l.r.workdir.empty()) io::require_writable_dir(l.r.workdir, "the workdir");
  comm.set_timeout(l.r.cfg.dist.timeout_s);
  l.device = dist::choose_device(l.r.cfg.dist.device, comm);
  l.sde = sde::make_sde(l.r.cfg);
  l.sde->to(l.device);
  if (l.r.cfg.model.name == "analytic_gmm") {
    SCORCH_CHECK(!l.r.workdir.empty(), "analytic_gmm: pass --workdir DIR for the outputs");
    l.gmm = std::make_unique<models::AnalyticGMM>(l.r.cfg.model);
    l.weights = "the exact score of the mixture (no weights)";
    l.gmm->to(l.device);
    l.score = [g = l.gmm.get(), s = l.sde.get()](const torch::Tensor& x, const torch::Tensor& t) {
      return g->score(*s, x, t);
    };
    spdlog::info("exact score of a {}-component Gaussian mixture in {} dimensions", l.r.cfg.model.gmm_means.size(),
                 l.gmm->dim());
    setup_guidance(l);
    return l;
  }
  // Read and verified completely; a file that fails, holds NaN/Inf or whose name disagrees
  // with its step is refused naming the earlier checkpoint that is usable.
  io::TrainState st;
  std::string problem;
  try {
    st = io::load_checkpoint(l.r.ckpt);
    problem = io::checkpoint_problem(st, l.r.ckpt).why;
  } catch (const std::exception& e) {
    problem = e.what();
  }
  SCORCH_CHECK(problem.empty(), "checkpoint {} cannot be used: {}; no samples or likelihoods can come from it. {}",
               l.r.ckpt, problem, usable_checkpoint_hint(l.r.workdir, l.r.ckpt));
  l.step = st.step;
  l.r.ckpt_identity = st.identity;  // of the content just verified
  l.net = models::make_model(l.r.cfg);
  models::load_weights(*l.net, io::weights(st, /*use_ema=*/true), st.buffers);
  l.weights = st.ema_profile.empty() ? weights_description(!st.ema.empty(), st.ema_decay, st.ema_updates)
                                     : st.ema_profile;
  l.net->to(l.device);
  l.net->eval();
  l.score = models::make_score_fn(*l.net, *l.sde, l.r.cfg.training.continuous);
  spdlog::info("loaded the {} of {} (step {}) on {}", l.weights, l.r.ckpt, l.step, l.device.str());
  setup_guidance(l);
  return l;
}

std::pair<models::ScoreFn, torch::Tensor> Loaded::score_for(const std::vector<int64_t>& index) const {
  auto labels = sampling::class_labels_for(r.cfg, index, num_classes);
  return {sampling::guided_score(guidance, labels), labels};
}

bool stopped(const dist::Communicator& comm, const farm::Report& report, const std::string& dir) {
  if (report.complete()) return false;
  if (comm.rank() == 0) fmt::print("{}\n", report.stopped_message(dir));
  return true;
}

std::string png_beside(const std::string& out) {
  const bool h5 = out.size() > 3 && out.compare(out.size() - 3, 3, ".h5") == 0;
  return out.substr(0, out.size() - (h5 ? 3 : 0)) + ".png";
}

std::string results_key(const Resolved& r, const std::string& settings) {
  const std::string ckpt = r.ckpt.empty() ? "analytic" : fs::path(r.ckpt).filename().string();
  const std::string identity = r.ckpt.empty() || r.legacy_identity() ? "" : r.ckpt_identity + "\n";
  return fnv1a64_hex(ckpt + "\n" + identity + settings).substr(0, 8);
}

SampleRun sample_run(const Resolved& r, int64_t step, int64_t set) {
  const auto& cfg = r.cfg;
  SampleRun run;
  run.set = set;
  run.first_index = set * cfg.eval.num_samples;
  run.settings = sampling::settings(cfg);
  if (set > 0) {
    run.settings += fmt::format("eval.seed_set = {} (samples {}..{})\n", set, run.first_index,
                                run.first_index + cfg.eval.num_samples - 1);
  }
  run.seeds = fmt::format("eval.seed = {}: sample i draws all its noise from stream ({}, i), i = {}..{}", cfg.eval.seed,
                          cfg.eval.seed, run.first_index, run.first_index + cfg.eval.num_samples - 1);
  run.identity = r.ckpt_identity;
  run.legacy = r.legacy_identity();
  run.name = fmt::format("s{:09d}-{}-{}", step, sampling::short_name(cfg), results_key(r, run.settings));
  run.dir = fmt::format("{}/samples/{}", r.workdir, run.name);
  run.plan.dir = run.dir;
  run.plan.num_items = cfg.eval.num_samples;
  run.plan.batch_size = cfg.eval.batch_size;
  run.plan.balance = cfg.eval.balance;
  run.plan.what = "samples";
  return run;
}

void note_other_checkpoint_runs(const std::string& dir, const std::string& prefix, const std::string& meta,
                                const std::string& identity) {
  std::error_code ec;
  const fs::path parent = fs::path(dir).parent_path();
  if (fs::exists(dir, ec) || !fs::is_directory(parent, ec)) return;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || e.path() == fs::path(dir) || !e.is_directory(ec)) continue;
    const fs::path m = meta[0] == '.' ? fs::path(e.path().string() + meta) : e.path() / meta;
    if (!fs::is_regular_file(m, ec)) continue;
    std::string had;
    try {
      std::ifstream in(m);
      const auto j = nlohmann::json::parse(in);
      if (j.contains("checkpoint_identity") && j["checkpoint_identity"].is_string()) {
        had = j["checkpoint_identity"].get<std::string>();
      } else if (j.contains("checkpoint") && j["checkpoint"].is_object() && j["checkpoint"].contains("identity") &&
                 j["checkpoint"]["identity"].is_string()) {
        had = j["checkpoint"]["identity"].get<std::string>();
      }
    } catch (const std::exception&) {
      continue;
    }
    if (had == identity) continue;
    spdlog::warn("{} holds results of this step from another checkpoint ({}; this one's identity is {}): not used, "
                 "computing again into {}", e.path().string(),
                 had.empty() ? std::string("one made before scorch recorded checkpoint identities")
                             : "identity " + had.substr(0, 16),
                 identity.substr(0, 16), dir);
  }
}

std::vector<int64_t> with_batch(int64_t b, const std::vector<int64_t>& item) {
  std::vector<int64_t> s{b};
  s.insert(s.end(), item.begin(), item.end());
  return s;
}

}  // namespace scorch::cli
