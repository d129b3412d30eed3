// The training loop: steps until a target, one log line every training.log_freq steps (the
// console, train_log.csv and TensorBoard, from one small all-reduce of the losses), EMA
// snapshots and checkpoints on their schedules, snapshot grids, and a clean stop on a
// signal (checkpoint, then return false).
#include "scorch/train/trainer.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "scorch/core/error.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/memory.h"
#include "scorch/core/random.h"
#include "scorch/core/torch_compat.h"
#include "scorch/core/version.h"
#include "scorch/data/dataset.h"
#include "scorch/io/files.h"
#include "scorch/io/tensorboard.h"
#include "scorch/data/image_grid.h"
#include "scorch/models/score_fn.h"
#include "scorch/sampling/noise.h"
#include "scorch/sampling/sampler.h"

namespace fs = std::filesystem;

namespace scorch::train {

using clock_type = std::chrono::steady_clock;

const std::vector<std::string>& train_log_columns() {
  static const std::vector<std::string> c{"step",        "loss",         "lr",           "images_per_s",
                                          "unix_time",   "elapsed_s",    "images_seen",  "grad_norm",
                                          "data_wait_ms", "step_ms",     "comm_ms",      "peak_mem_mb",
                                          "nonfinite_skipped"};
  return c;
}

namespace {

// <workdir>/train_log.csv opened for appending, resuming at `step`: rows past the step we
// resume from came from a run that died before its next checkpoint: those steps are trained
// again, so their old rows go (each step logs once). A log of fewer columns (an older scorch)
// keeps its rows, padded with empty fields. Rank 0 only.
std::ofstream open_train_log(const std::string& workdir, int64_t step) {
  fs::create_directories(workdir);
  const std::string log = workdir + "/train_log.csv";
  const auto& cols = train_log_columns();
  const std::string header = fmt::format("{}\n", fmt::join(cols, ","));
  std::string kept = header;
  bool rewrite = !fs::exists(log);
  if (fs::is_symlink(log)) {
    spdlog::warn("{} is a symlink: replacing it with a file (never writing through it)", log);
    rewrite = true;
  } else {
    std::ifstream in(log);
    std::string line;
    size_t pad = 0;
    int64_t dropped = 0;
    for (bool first = true; std::getline(in, line); first = false) {
      if (first) {
        if (line + "\n" != header) {
          rewrite = true;
          pad = cols.size() - std::min(cols.size(), static_cast<size_t>(std::count(line.begin(), line.end(), ',') + 1));
        }
        continue;
      }
      if (line.empty()) continue;
      const long long st = std::atoll(line.c_str());
      if (st <= step) {
        kept += line + std::string(pad, ',') + "\n";
      } else {
        ++dropped;
      }
    }
    if (dropped > 0) {
      spdlog::warn("train_log.csv: dropping {} rows after step {} (those steps are trained again)", dropped, step);
      rewrite = true;
    }
  }
  if (rewrite) io::write_text_atomically(log, kept);
  return std::ofstream(log, std::ios::app);
}

}  // namespace

void Trainer::snapshot_sampling() {
  const auto t0 = clock_type::now();
  const int64_t n = cfg_.training.snapshot_samples, W = comm_.size(), r = comm_.rank();
  const int64_t lo = n * r / W, hi = n * (r + 1) / W;
  // Sample with the EMA weights; the guard puts the trained weights and train mode back
  // bitwise on every way out.
  struct Restore {
    const NamedTensors& params;
    models::ScoreNet& model;
    std::vector<torch::Tensor> saved;
    ~Restore() {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < saved.size(); ++i) params[i].second.copy_(saved[i]);
      model.train();
    }
  } restore{trainable_, *model_, {}};
  torch::Tensor images;
  int64_t nfe = 0;
  {
    torch::NoGradGuard ng;
    for (const auto& [name, p] : trainable_) restore.saved.push_back(p.detach().clone());
    ema_->copy_to(trainable_);
    model_->eval();
    std::vector<int64_t> index;
    for (int64_t i = lo; i < hi; ++i) index.push_back(i);
    // A fixed stream per sample, the same at every snapshot (sampling/noise.h).
    const uint64_t key = derive_seed(static_cast<uint64_t>(cfg_.seed), Stream::kSnapshotSamples, {});
    auto noise = sampling::Noise::per_item(key, index, device_);
    auto score = models::make_score_fn(*model_, *sde_, cfg_.training.continuous);
    const auto item = cfg_.item_shape();
    if (hi > lo) {
      auto shape = item;
      shape.insert(shape.begin(), hi - lo);
      auto res = sampling::sample(cfg_, *sde_, score, shape, noise);
      nfe = res.nfe;
      images = data::unit_to_images(data::unscale(res.x.to(torch::kFloat32), cfg_.data.centered)).cpu();
    } else {
      images = torch::empty({0, item[1], item[2], item[0]}, torch::kUInt8);
    }
  }
  auto all = comm_.gather_rows(images.contiguous(), 0);
  if (comm_.rank() == 0) {
    const std::string png = fmt::format("{}/samples/snapshot_{:09d}.png", workdir_, step_);
    fs::create_directories(workdir_ + "/samples");
    data::write_png_grid(png, all, /*zoom=*/all.size(1) < 64 ? 2 : 1);
    std::ifstream in(png, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    int w = 0, h = 0;  // the PNG's size from its IHDR chunk (big-endian at bytes 16 and 20)
    for (int k = 0; k < 4; ++k) {
      w = (w << 8) | static_cast<unsigned char>(bytes[16 + k]);
      h = (h << 8) | static_cast<unsigned char>(bytes[20 + k]);
    }
    const double now = unix_seconds();
    if (events_) events_->image("samples/snapshot", step_, bytes, h, w, all.size(3), now);
    spdlog::info("snapshot sampling: {} samples ({}, {} NFE) with the EMA weights in {:.1f} s -> {}", n,
                 sampling::short_name(cfg_), nfe,
                 std::chrono::duration<double>(clock_type::now() - t0).count(), png);
  }
}

bool Trainer::run(int64_t until) {
  if (until < 0) until = cfg_.training.n_iters;
  const bool root = comm_.rank() == 0;
  std::ofstream csv;
  if (root) csv = open_train_log(workdir_, step_);
  const int64_t start = step_;
  if (step_ >= until) {
    spdlog::info("already at step {} (target {}): nothing to train", step_, until);
    return true;
  }
  if (root) {
    spdlog::info("{}", build_info_line());
    events_ = std::make_unique<io::EventWriter>(workdir_ + "/tensorboard");
  }
  spdlog::info("training {} from step {} to {}: {} ranks x {} images{} on {}, gradients over {} ({} buckets, overlap "
               "{}), {} parameters, {}",
               cfg_.model.name, step_, until, comm_.size(), cfg_.training.batch_size / comm_.size(),
               cfg_.training.grad_accum > 1 ? fmt::format(" in {} micro-batches", cfg_.training.grad_accum) : "",
               device_.str(), grad_comm_->name(), reducer_->buckets().size(), cfg_.dist.overlap ? "on" : "off",
               models::count_parameters(*model_), cfg_.training.precision);
  if (cfg_.data.prefetch > 0) {
    prefetch_ = std::make_unique<Prefetcher>([this](int64_t s) { return batches_->make(s); }, step_, until,
                                             cfg_.data.prefetch);
  }
  auto t0 = clock_type::now(), t_last = t0;
  int64_t last_step = step_;
  torch::Tensor loss_sum;  // this rank's losses since the last log line (on the device)
  int64_t loss_n = 0;
  double data_sum = 0, step_sum = 0, comm_sum = 0;  // rank 0's seconds since the last log line
  bool finished = true;
  while (step_ < until) {
    auto loss = train_step();
    loss_sum = loss_sum.defined() ? loss_sum + loss : loss;
    ++loss_n;
    data_sum += times_.data;
    step_sum += times_.total;
    comm_sum += times_.comm;
    bool last = step_ == until;
    if (step_ % cfg_.training.log_freq == 0 || last) {
      // One small all-reduce of the summed losses: the only host synchronisation of a log line.
      auto l = loss_sum.to(torch::kFloat64).reshape({1}).contiguous();
      grad_comm_->allreduce_sum(l);
      const double mean = l.item<double>() / static_cast<double>(comm_.size() * loss_n);
      auto now = clock_type::now();
      double dt = std::chrono::duration<double>(now - t_last).count();
      double ips = static_cast<double>((step_ - last_step) * cfg_.training.batch_size) / std::max(dt, 1e-9);
      double per_step = std::chrono::duration<double>(now - t0).count() / static_cast<double>(step_ - start);
      spdlog::info("step {:>7}/{} | loss {:.5f} | lr {:.2e} | {:.1f} img/s | ETA {}", step_, until, mean,
                   adam_->lr_at(step_ - 1), ips, format_duration(per_step * static_cast<double>(until - step_)));
      if (root) {
        const double unix_time = unix_seconds();
        const double peak = static_cast<double>(device_.is_cuda() ? compat::cuda_peak_allocated(device_)
                                                                  : peak_rss_bytes()) / 1048576.0;
        const double n = static_cast<double>(loss_n);
        const std::vector<double> values{static_cast<double>(step_),
                                         mean,
                                         adam_->lr_at(step_ - 1),
                                         ips,
                                         unix_time,
                                         std::chrono::duration<double>(now - t0).count(),
                                         static_cast<double>(step_ * cfg_.training.batch_size),
                                         last_grad_norm_,
                                         1e3 * data_sum / n,
                                         1e3 * step_sum / n,
                                         1e3 * comm_sum / n,
                                         peak,
                                         static_cast<double>(nonfinite_total_)};
        csv << fmt::format("{},{:.6g},{:.6g},{:.2f},{:.3f},{:.3f},{},{:.6g},{:.3f},{:.3f},{:.3f},{:.3f},{}\n", step_,
                           values[1], values[2], values[3], values[4], values[5], step_ * cfg_.training.batch_size,
                           values[7], values[8], values[9], values[10], values[11], nonfinite_total_)
            << std::flush;
        const auto& cols = train_log_columns();
        std::vector<std::pair<std::string, double>> scalars;
        for (size_t i = 1; i < cols.size(); ++i) scalars.emplace_back("train/" + cols[i], values[i]);
        events_->scalars(step_, unix_time, scalars);
      }
      t_last = now;
      last_step = step_;
      loss_sum = torch::Tensor();
      loss_n = 0;
      data_sum = step_sum = comm_sum = 0;
    }
    if (stop_agreed_) {
      spdlog::warn("stop requested (SIGTERM/SIGUSR1/SIGINT): checkpointing at step {}", step_);
      save_checkpoint(/*wait=*/true);
      finished = false;
      break;
    }
    maybe_snapshot_ema();
    if (step_ % cfg_.training.snapshot_freq == 0 || last) {
      save_checkpoint(/*wait=*/last);
      if (on_checkpoint_ && comm_.rank() == 0) on_checkpoint_(step_);
      if (cfg_.training.snapshot_sampling && cfg_.is_image_data()) snapshot_sampling();
    }
  }
  prefetch_.reset();
  wait_for_checkpoints();
  return finished;
}

}  // namespace scorch::train
