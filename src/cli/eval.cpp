// `scorch eval bpd`: test-set bits/dim through the probability-flow ODE with the
// Hutchinson-Skilling trace estimator, sharded over ranks in fixed chunks whose
// dequantisation and trace noise depend only on (repeat, chunk).
#include <CLI/CLI.hpp>

#include <memory>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/hdf5.h"
#include "scorch/likelihood/likelihood.h"

namespace scorch::cli {

namespace {

int eval_bpd(const Common& opt, dist::Communicator& comm) {
  auto l = load_score_model(opt, comm);
  const auto& cfg = l.r.cfg;
  const std::string& path = cfg.eval_data_path();
  SCORCH_CHECK(!path.empty(), "no evaluation data: set data.eval_path (or data.path)");
  const auto info = data::inspect(path, cfg.eval.bpd_num_images);
  data::check_matches(info, cfg);  // before anything is read
  auto ds = data::load(info);
  const int64_t n = ds.size(), chunk = cfg.eval.batch_size, R = cfg.eval.bpd_num_repeats;
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto mine = dist::shard_range(chunks, comm.rank(), comm.size());
  auto item = cfg.item_shape();
  int64_t D = 1;
  for (auto d : item) D *= d;
  const double offset = cfg.is_image_data() ? (cfg.data.centered ? 7.0 : 8.0) : 0.0;
  const auto on = torch::TensorOptions().device(l.device);
  spdlog::info("bits/dim of {} items of {} x {} repeats: probability-flow ODE, RK45 rtol {} atol {}, {} ranks on {}", n,
               path, R, cfg.eval.rtol, cfg.eval.atol, comm.size(), l.device.str());
  std::vector<torch::Tensor> rows;     // per chunk: [b, R]
  std::vector<torch::Tensor> latents;  // per chunk: x(T) of repeat 0, [b,...]
  int64_t nfe_total = 0, solves = 0;
  std::vector<torch::Tensor> exact;  // analytic_gmm: exact log p at eps, to report the error
  Progress prog("bits/dim (rank 0 chunks x repeats)", std::max<int64_t>(mine.size() * R, 1));
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    const int64_t b = std::min(chunk, n - c * chunk);
    std::vector<torch::Tensor> reps;
    for (int64_t k = 0; k < R; ++k) {
      auto gen = make_generator(l.device, derive_seed(static_cast<uint64_t>(cfg.seed), Stream::kLikelihood,
                                                      {static_cast<uint64_t>(k), static_cast<uint64_t>(c)}));
      torch::Tensor x;
      if (ds.is_image()) {
        auto u8 = ds.images.slice(0, c * chunk, c * chunk + b).to(l.device);
        x = data::scale(data::images_to_unit(u8, torch::rand(with_batch(b, item), gen, on.dtype(torch::kFloat32))),
                        cfg.data.centered);
      } else {
        x = ds.points.slice(0, c * chunk, c * chunk + b).to(l.device);
      }
      auto e = cfg.eval.hutchinson == "gaussian" ? torch::randn(with_batch(b, item), gen, on.dtype(torch::kFloat32))
                                                 : likelihood::rademacher(with_batch(b, item), gen);
      auto res = likelihood::logp_ode(l.score, *l.sde, x, e, {cfg.eval.rtol, cfg.eval.atol});
      if (l.gmm) exact.push_back(l.gmm->logp(*l.sde, x, torch::full({b}, likelihood::kLikelihoodEps, x.options())).cpu());
      nfe_total += res.nfe;
      ++solves;
      reps.push_back(likelihood::bits_per_dim(res.logp, D, offset).to(torch::kFloat64).cpu());
      if (k == 0) latents.push_back(res.z.to(torch::kFloat32).cpu());
      prog.tick((c - mine.begin) * R + k + 1);
    }
    rows.push_back(torch::stack(reps, 1));
  }
  auto local = rows.empty() ? torch::empty({0, R}, torch::kFloat64) : torch::cat(rows);
  auto all = comm.gather_rows(local, 0);
  // Collective on every rank (analytic_gmm only): the exact log p of the same items.
  auto all_latents = comm.gather_rows(latents.empty() ? torch::empty(with_batch(0, item)) : torch::cat(latents), 0);
  torch::Tensor ex;
  if (l.gmm) ex = comm.gather_rows(exact.empty() ? torch::empty({0}, torch::kFloat64) : torch::cat(exact), 0);
  auto counts = torch::tensor({nfe_total, solves}, torch::kInt64);
  comm.allreduce_sum(counts);
  const double nfe = static_cast<double>(counts[0].item<int64_t>()) / std::max<int64_t>(counts[1].item<int64_t>(), 1);
  if (comm.rank() == 0) {
    auto per_repeat = all.mean(0);
    double mean = all.mean().item<double>();
    std::string out = fmt::format("{}/eval/bpd_{:09d}.h5", l.r.workdir, l.step);
    h5::write_atomically(out, [&](hid_t f) {
      h5::write_tensor(f, "bpd", all.t().contiguous());  // [R, N]
      h5::write_tensor(f, "latents", all_latents);        // [N,...] of repeat 0
      h5::set_attr(f, "mean", mean);
      h5::set_attr(f, "step", l.step);
      h5::set_attr(f, "mean_nfe", nfe);
      h5::set_attr(f, "data", path);
      h5::write_string(f, "config", to_toml(cfg));
    });
    for (int64_t k = 0; k < R; ++k) spdlog::info("repeat {}: {:.4f} bits/dim", k, per_repeat[k].item<double>());
    if (l.gmm) {
      // Exact bits/dim of the same items (repeat 0's draws; point data have no dequantisation).
      double exact_bpd = likelihood::bits_per_dim(ex, D, 0.0).mean().item<double>();
      spdlog::info("analytic_gmm: exact {:.5f} bits/dim, ODE estimate {:.5f} (difference {:.2e})", exact_bpd, mean,
                   mean - exact_bpd);
    }
    fmt::print("eval: per-item results -> {}\n", out);
    fmt::print("eval: {} items x {} repeats, {:.0f} NFE per solve (mean): bpd {:.4f}\n", n, R, nfe, mean);
  }
  return 0;
}

}  // namespace

Command eval_command() {
  auto opt = std::make_shared<Common>();
  auto bpd = std::make_shared<CLI::App*>(nullptr);
  Command c;
  c.name = "eval";
  c.help = "evaluate a checkpoint";
  c.declare = [opt, bpd](CLI::App& app) {
    app.require_subcommand(1);
    *bpd = app.add_subcommand("bpd", "test-set bits/dim through the probability-flow ODE (Hutchinson trace)");
    add_common(**bpd, *opt, true);
    (*bpd)->footer("Data: data.eval_path (default data.path), eval.bpd_num_images (0: all), eval.bpd_num_repeats, "
                   "eval.rtol / eval.atol, eval.hutchinson (rademacher | gaussian). Writes "
                   "<workdir>/eval/bpd_<step>.h5 and prints `bpd <mean>` last.");
  };
  c.run = [opt, bpd](dist::Communicator& comm) { return **bpd ? eval_bpd(*opt, comm) : 1; };
  return c;
}

}  // namespace scorch::cli
