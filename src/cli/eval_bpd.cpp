// `scorch eval bpd`: test-set bits/dim through the probability-flow ODE with the
// Hutchinson-Skilling trace estimator, through the farm (farm/farm.h). Images are dealt in
// batches of eval.batch_size by index; batch c of repeat k draws its dequantisation and
// trace noise from stream (seed, k, c), so the result does not depend on the world size.
// Per-image results go to one file per batch under <workdir>/eval/bpd-<run>/; a rerun skips
// finished batches. The result is logged with its provenance (cli/provenance.h).
#include <cmath>
#include <filesystem>

#include "scorch/cli/common.h"
#include "scorch/cli/evaluation.h"
#include "scorch/cli/provenance.h"
#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/data/source.h"
#include "scorch/io/hdf5.h"
#include "scorch/likelihood/likelihood.h"

namespace fs = std::filesystem;

namespace scorch::cli {

int eval_bpd(const Common& opt, dist::Communicator& comm, bool reuse_records, std::string* record_out) {
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
  // The checkpoint's content identity is part of the batches' settings and of the folder's
  // name: another checkpoint of this step (--discard-newer, a replaced file) computes anew.
  // A checkpoint of version 1 to 3 keeps the folder and settings its batches had before.
  const std::string batch_settings =
      l.r.legacy_identity() ? settings : settings + fmt::format("checkpoint_identity = {}\n", l.r.ckpt_identity);
  farm::Plan plan;
  plan.dir = fmt::format("{}/eval/bpd-s{:09d}-{}", l.r.workdir, l.step, results_key(l.r, settings));
  plan.num_items = n;
  plan.batch_size = cfg.eval.batch_size;
  plan.balance = cfg.eval.balance;
  plan.what = "bits/dim images";
  const std::string record = plan.dir + ".json";
  if (record_out) *record_out = record;
  if (reuse_records && record_exists(comm, record, "batches", plan.dir, l.r.ckpt_identity)) {
    if (comm.rank() == 0) fmt::print("eval: bits/dim of step {} already evaluated -> {}\n", l.step, record);
    return 0;
  }
  if (comm.rank() == 0) {
    note_other_checkpoint_runs(plan.dir, fmt::format("bpd-s{:09d}-", l.step), ".json", l.r.ckpt_identity);
    spdlog::info("bits/dim of {} items of {} x {} repeats: probability-flow ODE, RK45 rtol {} atol {}, {} ranks on {}", n,
                 path, R, cfg.eval.rtol, cfg.eval.atol, comm.size(), l.device.str());
  }
  auto report = farm::run(
      comm, plan, [&](const farm::Batch& b) { return farm::batch_file_complete(b, "settings", batch_settings); },
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
        farm::write_batch(b, "settings", batch_settings, [&](hid_t f) {
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
      h5::set_attr(f, "checkpoint_identity", l.r.ckpt_identity);
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
    Provenance p;
    p.checkpoint = l.r.ckpt.empty() ? std::string("analytic_gmm (exact score)") : l.r.ckpt;
    if (!l.r.ckpt.empty()) p.checkpoint_sha256 = file_sha256_hex(l.r.ckpt);
    p.checkpoint_identity = l.r.ckpt_identity;
    p.weights = l.weights;
    p.sampler = fmt::format("likelihood = probability-flow ODE, RK45 (Dormand-Prince)\neval.rtol = {}\neval.atol = "
                            "{}\neval.hutchinson = {}\neval.bpd_num_repeats = {}\nmodel.num_scales = {}\ntraining.sde "
                            "= {}\n",
                            cfg.eval.rtol, cfg.eval.atol, cfg.eval.hutchinson, R, cfg.model.num_scales,
                            cfg.training.sde);
    p.nfe_mean = nfes.mean().item<double>();
    p.nfe_min = nfes.min().item<double>();
    p.nfe_max = nfes.max().item<double>();
    p.n = n;
    p.seeds = fmt::format("seed = {}: repeat k of batch c (items c*{}.., of {}) draws its dequantisation and trace "
                          "noise from stream ({}, k, c)",
                          cfg.seed, cfg.eval.batch_size, n, cfg.seed);
    p.data = fs::absolute(path).string();
    p.data_sha256 = file_sha256_hex(path);
    p.settings = fmt::format("eval.batch_size = {}\nranks = {}\ndevice = {}\nbatches = {}\n", cfg.eval.batch_size,
                             comm.size(), l.device.str(), plan.dir);
    log_results(l.r.workdir, l.step, {{"bpd", mean, se}}, p, record);
    fmt::print("provenance -> {} (and a row of {}/eval_log.csv)\n", record, l.r.workdir);
    fmt::print("bpd {:.4f}\n", mean);
  }
  return 0;
}

}  // namespace scorch::cli
