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
#include "scorch/models/score_fn.h"
#include "scorch/sampling/sampler.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct Loaded {
  Resolved r;
  io::TrainState st;
  std::unique_ptr<sde::SDE> sde;
  models::ScoreNetPtr net;
};

Loaded load_ema_model(const Common& opt) {
  Loaded l;
  l.r = resolve(opt, /*need_ckpt=*/true);
  l.st = io::load_checkpoint(l.r.ckpt);
  l.sde = sde::make_sde(l.r.cfg);
  l.net = models::make_model(l.r.cfg);
  train::load_weights(*l.net, l.st, /*use_ema=*/true);
  l.net->eval();
  spdlog::info("loaded EMA weights of {} (step {})", l.r.ckpt, l.st.step);
  return l;
}

// Logs "label: done/total, ETA" about every 10% on rank 0.
class Progress {
 public:
  Progress(std::string label, int64_t total) : label_(std::move(label)), total_(total), t0_(clock::now()) {}
  void tick(int64_t done) {
    if (done * 10 / total_ == last_decile_ && done != total_) return;
    last_decile_ = done * 10 / total_;
    double el = std::chrono::duration<double>(clock::now() - t0_).count();
    spdlog::info("{}: {}/{} | {} elapsed | ETA {}", label_, done, total_, format_duration(el),
                 format_duration(el / static_cast<double>(done) * static_cast<double>(total_ - done)));
  }

 private:
  using clock = std::chrono::steady_clock;
  std::string label_;
  int64_t total_;
  clock::time_point t0_;
  int64_t last_decile_ = 0;
};

std::vector<int64_t> with_batch(int64_t b, const std::vector<int64_t>& item) {
  std::vector<int64_t> s{b};
  s.insert(s.end(), item.begin(), item.end());
  return s;
}

}  // namespace

int sample(const Common& opt, dist::Communicator& comm) {
  auto l = load_ema_model(opt);
  const auto& cfg = l.r.cfg;
  const int64_t n = cfg.eval.num_samples, chunk = cfg.eval.batch_size;
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto mine = dist::shard_range(chunks, comm.rank(), comm.size());
  auto score = models::make_score_fn(*l.net, *l.sde);
  const int64_t N = cfg.model.num_scales;
  spdlog::info("sampling {} items with Euler-Maruyama, {} steps, {} ranks, chunks of {}", n, N, comm.size(), chunk);
  std::vector<torch::Tensor> out;
  int64_t nfe = 0;
  Progress prog(fmt::format("sampling (rank 0: {} chunks)", mine.size()), mine.size() * N);
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    int64_t b = std::min(chunk, n - c * chunk);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(
        train::derive_seed(static_cast<uint64_t>(cfg.seed), {5, static_cast<uint64_t>(c)}));
    auto res = sampling::euler_maruyama(score, *l.sde, with_batch(b, cfg.item_shape()), N, l.sde->sampling_eps(),
                                        cfg.sampling.noise_removal, gen,
                                        [&](int64_t i, int64_t) { prog.tick((c - mine.begin) * N + i); });
    nfe = res.nfe;
    out.push_back(res.x);
  }
  auto local = out.empty() ? torch::empty(with_batch(0, cfg.item_shape())) : torch::cat(out);
  if (cfg.is_image_data()) local = data::unscale(local, cfg.data.centered);
  auto all = comm.gather_rows(local.to(torch::kFloat32).contiguous(), 0);
  if (comm.rank() == 0) {
    fs::create_directories(l.r.workdir + "/samples");
    std::string base = fmt::format("{}/samples/samples_{:09d}", l.r.workdir, l.st.step);
    std::string tmp = base + ".h5.tmp";
    {
      auto f = h5::File::create(tmp);
      h5::write_tensor(f.id(), "samples", all);
      if (cfg.is_image_data()) h5::write_tensor(f.id(), "images", data::unit_to_images(all));
      h5::set_attr(f.id(), "step", l.st.step);
      h5::set_attr(f.id(), "nfe", nfe);
      h5::set_attr(f.id(), "sampler", std::string("pc:euler_maruyama:none"));
      h5::write_string(f.id(), "config", to_toml(cfg));
    }
    h5::commit_file(tmp, base + ".h5");
    fmt::print("sample: {} samples ({} NFE each) -> {}.h5\n", all.size(0), nfe, base);
    if (cfg.is_image_data()) {
      auto imgs = data::unit_to_images(all.slice(0, 0, std::min<int64_t>(all.size(0), 100)));
      data::write_png_grid(base + ".png", imgs, imgs.size(1) < 64 ? 2 : 1);
      fmt::print("sample: grid of {} -> {}.png\n", imgs.size(0), base);
    }
  }
  return 0;
}

int eval_bpd(const Common& opt, dist::Communicator& comm) {
  auto l = load_ema_model(opt);
  const auto& cfg = l.r.cfg;
  const std::string& path = cfg.eval_data_path();
  SCORCH_CHECK(!path.empty(), "no evaluation data: set data.eval_path (or data.path)");
  auto ds = data::load(path, cfg.eval.bpd_num_images);
  data::check_matches(ds, cfg);
  const int64_t n = ds.size(), chunk = cfg.eval.batch_size, R = cfg.eval.bpd_num_repeats;
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto mine = dist::shard_range(chunks, comm.rank(), comm.size());
  auto score = models::make_score_fn(*l.net, *l.sde);
  auto item = cfg.item_shape();
  int64_t D = 1;
  for (auto d : item) D *= d;
  const double offset = cfg.is_image_data() ? (cfg.data.centered ? 7.0 : 8.0) : 0.0;
  spdlog::info("bits/dim of {} items of {} x {} repeats: probability-flow ODE, RK45 rtol {} atol {}, {} ranks", n,
               path, R, cfg.eval.rtol, cfg.eval.atol, comm.size());
  std::vector<torch::Tensor> rows;  // per chunk: [b, R]
  int64_t nfe_total = 0, solves = 0;
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
      auto e = likelihood::rademacher(with_batch(b, item), gen);
      auto res = likelihood::logp_ode(score, *l.sde, x, e, {cfg.eval.rtol, cfg.eval.atol});
      nfe_total += res.nfe;
      ++solves;
      reps.push_back(likelihood::bits_per_dim(res.logp, D, offset).to(torch::kFloat64));
      prog.tick((c - mine.begin) * R + k + 1);
    }
    rows.push_back(torch::stack(reps, 1));
  }
  auto local = rows.empty() ? torch::empty({0, R}, torch::kFloat64) : torch::cat(rows);
  auto all = comm.gather_rows(local, 0);
  auto counts = torch::tensor({nfe_total, solves}, torch::kInt64);
  comm.allreduce_sum(counts);
  const double nfe = static_cast<double>(counts[0].item<int64_t>()) / std::max<int64_t>(counts[1].item<int64_t>(), 1);
  if (comm.rank() == 0) {
    auto per_repeat = all.mean(0);
    double mean = all.mean().item<double>();
    fs::create_directories(l.r.workdir + "/eval");
    std::string out = fmt::format("{}/eval/bpd_{:09d}.h5", l.r.workdir, l.st.step);
    {
      auto f = h5::File::create(out + ".tmp");
      h5::write_tensor(f.id(), "bpd", all.t().contiguous());  // [R, N]
      h5::set_attr(f.id(), "mean", mean);
      h5::set_attr(f.id(), "step", l.st.step);
      h5::set_attr(f.id(), "mean_nfe", nfe);
      h5::set_attr(f.id(), "data", path);
      h5::write_string(f.id(), "config", to_toml(cfg));
    }
    h5::commit_file(out + ".tmp", out);
    for (int64_t k = 0; k < R; ++k) spdlog::info("repeat {}: {:.4f} bits/dim", k, per_repeat[k].item<double>());
    fmt::print("eval: per-item results -> {}\n", out);
    fmt::print("eval: {} items x {} repeats, {:.0f} NFE per solve (mean): bpd {:.4f}\n", n, R, nfe, mean);
  }
  return 0;
}

}  // namespace scorch::cli
