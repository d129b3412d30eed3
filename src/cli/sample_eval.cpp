// `scorch sample` and `scorch eval bpd`: sharded over ranks in fixed chunks of
// eval.batch_size whose seeds depend only on the chunk index, so the output is the same
// whatever the number of ranks; rank 0 gathers and writes the files.
#include <chrono>
#include <cmath>
#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/data/dataset.h"
#include "scorch/data/image_grid.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/hdf5.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/models/analytic_gmm.h"
#include "scorch/models/score_fn.h"
#include "scorch/sampling/sampler.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

// A score function ready to use: a network with the EMA weights of a checkpoint, or the
// exact analytic_gmm model (no checkpoint; step 0).
struct Loaded {
  Resolved r;
  int64_t step = 0;
  std::unique_ptr<sde::SDE> sde;
  models::ScoreNetPtr net;
  std::unique_ptr<models::AnalyticGMM> gmm;
  models::ScoreFn score;
};

Loaded load_score_model(const Common& opt) {
  Loaded l;
  l.r = resolve(opt, /*need_ckpt=*/true);
  l.sde = sde::make_sde(l.r.cfg);
  if (l.r.cfg.model.name == "analytic_gmm") {
    SCORCH_CHECK(!l.r.workdir.empty(), "analytic_gmm: pass --workdir DIR for the outputs");
    l.gmm = std::make_unique<models::AnalyticGMM>(l.r.cfg.model);
    l.score = [g = l.gmm.get(), s = l.sde.get()](const torch::Tensor& x, const torch::Tensor& t) {
      return g->score(*s, x, t);
    };
    spdlog::info("exact score of a {}-component Gaussian mixture in {} dimensions", l.r.cfg.model.gmm_means.size(),
                 l.gmm->dim());
    return l;
  }
  auto st = io::load_checkpoint(l.r.ckpt);
  l.step = st.step;
  l.net = models::make_model(l.r.cfg);
  train::load_weights(*l.net, st, /*use_ema=*/true);
  l.net->eval();
  l.score = models::make_score_fn(*l.net, *l.sde, l.r.cfg.training.continuous);
  spdlog::info("loaded EMA weights of {} (step {})", l.r.ckpt, l.step);
  return l;
}

// Writes samples like `scorch sample` does: /samples float32 in data space and, for image
// data, /images uint8 [N,H,W,C] plus a PNG grid beside the file.
void write_samples(const std::string& path, const torch::Tensor& all, const Config& cfg, int64_t step, int64_t nfe,
                   const std::string& how) {
  h5::write_atomically(path, [&](hid_t f) {
    h5::write_tensor(f, "samples", all);
    if (cfg.is_image_data()) h5::write_tensor(f, "images", data::unit_to_images(all));
    h5::set_attr(f, "step", step);
    h5::set_attr(f, "nfe", nfe);
    h5::set_attr(f, "sampler", how);
    h5::write_string(f, "config", to_toml(cfg));
  });
  fmt::print("{} items ({} NFE each) -> {}\n", all.size(0), nfe, path);
  if (cfg.is_image_data()) {
    auto imgs = data::unit_to_images(all.slice(0, 0, std::min<int64_t>(all.size(0), 100)));
    auto png = path.substr(0, path.size() - 3) + ".png";
    data::write_png_grid(png, imgs, imgs.size(1) < 64 ? 2 : 1);
    fmt::print("grid of {} -> {}\n", imgs.size(0), png);
  }
}

// Runs `fn` on this rank's chunks of [0, n) (chunks of `chunk` rows) and gathers the
// results on rank 0 in order.
torch::Tensor sharded(int64_t n, int64_t chunk, dist::Communicator& comm, const std::vector<int64_t>& item,
                      const std::function<torch::Tensor(int64_t begin, int64_t count)>& fn) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto mine = dist::shard_range(chunks, comm.rank(), comm.size());
  std::vector<torch::Tensor> out;
  for (int64_t c = mine.begin; c < mine.end; ++c) out.push_back(fn(c * chunk, std::min(chunk, n - c * chunk)));
  std::vector<int64_t> empty{0};
  empty.insert(empty.end(), item.begin(), item.end());
  auto local = out.empty() ? torch::empty(empty, torch::kFloat32) : torch::cat(out);
  return comm.gather_rows(local.to(torch::kFloat32).contiguous(), 0);
}

std::vector<int64_t> with_batch(int64_t b, const std::vector<int64_t>& item) {
  std::vector<int64_t> s{b};
  s.insert(s.end(), item.begin(), item.end());
  return s;
}

}  // namespace

int sample(const Common& opt, dist::Communicator& comm) {
  auto l = load_score_model(opt);
  const auto& cfg = l.r.cfg;
  const int64_t n = cfg.eval.num_samples, chunk = cfg.eval.batch_size;
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto mine = dist::shard_range(chunks, comm.rank(), comm.size());
  const auto& score = l.score;
  const int64_t N = cfg.model.num_scales;
  const std::string sampler = cfg.sampling.method == "ode"
                                  ? fmt::format("ode:rk45(rtol {}, atol {})", cfg.sampling.rtol, cfg.sampling.atol)
                                  : fmt::format("pc:{}:{}", cfg.sampling.predictor, cfg.sampling.corrector);
  spdlog::info("sampling {} items with {}, N = {}, {} ranks, chunks of {}", n, sampler, N, comm.size(), chunk);
  std::vector<torch::Tensor> out;
  int64_t nfe = 0;
  Progress prog(fmt::format("sampling (rank 0: {} chunks)", mine.size()), mine.size() * N);
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    int64_t b = std::min(chunk, n - c * chunk);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(
        train::derive_seed(static_cast<uint64_t>(cfg.seed), {5, static_cast<uint64_t>(c)}));
    auto res = sampling::sample(cfg, *l.sde, score, with_batch(b, cfg.item_shape()), gen,
                                [&](int64_t i, int64_t) { prog.tick((c - mine.begin) * N + i); });
    nfe = res.nfe;
    out.push_back(res.x);
  }
  auto local = out.empty() ? torch::empty(with_batch(0, cfg.item_shape())) : torch::cat(out);
  if (cfg.is_image_data()) local = data::unscale(local, cfg.data.centered);
  auto all = comm.gather_rows(local.to(torch::kFloat32).contiguous(), 0);
  if (comm.rank() == 0) {
    write_samples(fmt::format("{}/samples/samples_{:09d}.h5", l.r.workdir, l.step), all, cfg, l.step, nfe, sampler);
  }
  return 0;
}

int eval_bpd(const Common& opt, dist::Communicator& comm) {
  auto l = load_score_model(opt);
  const auto& cfg = l.r.cfg;
  const std::string& path = cfg.eval_data_path();
  SCORCH_CHECK(!path.empty(), "no evaluation data: set data.eval_path (or data.path)");
  auto ds = data::load(path, cfg.eval.bpd_num_images);
  data::check_matches(ds, cfg);
  const int64_t n = ds.size(), chunk = cfg.eval.batch_size, R = cfg.eval.bpd_num_repeats;
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto mine = dist::shard_range(chunks, comm.rank(), comm.size());
  const auto& score = l.score;
  auto item = cfg.item_shape();
  int64_t D = 1;
  for (auto d : item) D *= d;
  const double offset = cfg.is_image_data() ? (cfg.data.centered ? 7.0 : 8.0) : 0.0;
  spdlog::info("bits/dim of {} items of {} x {} repeats: probability-flow ODE, RK45 rtol {} atol {}, {} ranks", n,
               path, R, cfg.eval.rtol, cfg.eval.atol, comm.size());
  std::vector<torch::Tensor> rows;     // per chunk: [b, R]
  std::vector<torch::Tensor> latents;  // per chunk: x(T) of repeat 0, [b,...]
  int64_t nfe_total = 0, solves = 0;
  std::vector<torch::Tensor> exact;  // analytic_gmm: exact log p at eps, to report the error
  Progress prog("bits/dim (rank 0 chunks x repeats)", std::max<int64_t>(mine.size() * R, 1));
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    int64_t b = std::min(chunk, n - c * chunk);
    std::vector<torch::Tensor> reps;
    for (int64_t k = 0; k < R; ++k) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(train::derive_seed(
          static_cast<uint64_t>(cfg.seed), {6, static_cast<uint64_t>(k), static_cast<uint64_t>(c)}));
      torch::Tensor x;
      if (ds.is_image()) {
        auto u8 = ds.images.slice(0, c * chunk, c * chunk + b);
        x = data::scale(data::images_to_unit(u8, torch::rand(with_batch(b, item), gen, torch::kFloat32)),
                        cfg.data.centered);
      } else {
        x = ds.points.slice(0, c * chunk, c * chunk + b);
      }
      auto e = cfg.eval.hutchinson == "gaussian" ? torch::randn(with_batch(b, item), gen, torch::kFloat32)
                                                 : likelihood::rademacher(with_batch(b, item), gen);
      auto res = likelihood::logp_ode(score, *l.sde, x, e, {cfg.eval.rtol, cfg.eval.atol});
      if (l.gmm) exact.push_back(l.gmm->logp(*l.sde, x, torch::full({b}, likelihood::kLikelihoodEps)));
      nfe_total += res.nfe;
      ++solves;
      reps.push_back(likelihood::bits_per_dim(res.logp, D, offset).to(torch::kFloat64));
      if (k == 0) latents.push_back(res.z.to(torch::kFloat32));
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

int encode(const Common& opt, const std::string& data_path, const std::string& out, dist::Communicator& comm) {
  auto l = load_score_model(opt);
  const auto& cfg = l.r.cfg;
  auto ds = data::load(data_path);
  data::check_matches(ds, cfg);
  const auto item = cfg.item_shape();
  spdlog::info("encoding {} items of {} through the probability-flow ODE (RK45 rtol {}, atol {})", ds.size(), data_path,
               cfg.eval.rtol, cfg.eval.atol);
  int64_t nfe = 0;
  auto all = sharded(ds.size(), cfg.eval.batch_size, comm, item, [&](int64_t begin, int64_t count) {
    auto x = ds.is_image() ? data::scale(data::images_to_unit(ds.images.slice(0, begin, begin + count)), cfg.data.centered)
                           : ds.points.slice(0, begin, begin + count);
    auto res = sampling::ode_flow(*l.sde, l.score, x, likelihood::kLikelihoodEps, l.sde->T(),
                                  {cfg.eval.rtol, cfg.eval.atol});
    nfe = std::max(nfe, res.nfe);
    return res.x;
  });
  auto nfe_t = torch::tensor({nfe}, torch::kInt64);
  comm.allreduce_sum(nfe_t);
  if (comm.rank() == 0) {
    h5::write_atomically(out, [&](hid_t f) {
      h5::write_tensor(f, "latents", all);
      h5::set_attr(f, "step", l.step);
      h5::set_attr(f, "data", data_path);
      h5::set_attr(f, "nfe_sum_over_ranks", nfe_t.item<int64_t>());
      h5::write_string(f, "config", to_toml(cfg));
    });
    fmt::print("encode: {} latents [{}] -> {}\n", all.size(0), fmt::join(all.sizes(), ", "), out);
  }
  return 0;
}

int decode(const Common& opt, const std::string& latents_path, const std::string& out_in, dist::Communicator& comm) {
  auto l = load_score_model(opt);
  const auto& cfg = l.r.cfg;
  torch::Tensor z;
  {
    auto f = h5::File::open_read(latents_path);
    z = h5::read_tensor(f.id(), "latents", latents_path).to(torch::kFloat32);
  }
  auto item = cfg.item_shape();
  SCORCH_CHECK(z.dim() == static_cast<int64_t>(item.size()) + 1 && z.sizes().slice(1).vec() == item,
               "{}: /latents has shape [{}] but the model's items are [{}]", latents_path, fmt::join(z.sizes(), ", "),
               fmt::join(item, ", "));
  spdlog::info("decoding {} latents of {} (RK45 rtol {}, atol {})", z.size(0), latents_path, cfg.sampling.rtol,
               cfg.sampling.atol);
  int64_t nfe = 0;
  auto all = sharded(z.size(0), cfg.eval.batch_size, comm, item, [&](int64_t begin, int64_t count) {
    auto res = sampling::ode_flow(*l.sde, l.score, z.slice(0, begin, begin + count), l.sde->T(),
                                  likelihood::kLikelihoodEps, {cfg.sampling.rtol, cfg.sampling.atol});
    nfe = std::max(nfe, res.nfe);
    return res.x;
  });
  if (comm.rank() == 0) {
    if (cfg.is_image_data()) all = data::unscale(all, cfg.data.centered);
    std::string out = out_in.empty() ? fmt::format("{}/samples/decoded_{:09d}.h5", l.r.workdir, l.step) : out_in;
    write_samples(out, all, cfg, l.step, nfe, "decode:ode:rk45");
  }
  return 0;
}

}  // namespace scorch::cli
