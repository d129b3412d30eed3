// `scorch bench train`: whole training steps of a job (data, forward, backward, exposed
// communication, optimizer + EMA) with overlap on and off: images/s, the step-time breakdown
// and model FLOPs utilisation.
#include <CLI/CLI.hpp>
#include <chrono>

#include "scorch/cli/bench.h"
#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/torch_compat.h"
#include "scorch/dist/backend.h"
#include "scorch/models/model.h"
#include "scorch/train/trainer.h"

namespace scorch::cli {

namespace {

using namespace bench;

struct TrainOptions {
  Common common;
  int64_t steps = 10, warmup = 2, synthetic = 0;
  double peak_tflops = 0;
  std::string json;
};

struct TrainFigures {
  double images_per_s = 0, step = 0;
  train::StepTimes med;
  int64_t buckets = 0, in_backward = 0;
};

TrainFigures time_training(const Config& cfg, dist::Communicator& comm, const torch::Device& device,
                           const TrainOptions& o) {
  train::Trainer trainer(cfg, comm, "", device);
  for (int64_t i = 0; i < o.warmup; ++i) trainer.train_step();
  // Throughput: steps back to back, one synchronisation at the end.
  if (device.is_cuda()) torch::cuda::synchronize();
  comm.barrier();
  auto t0 = clock_type::now();
  for (int64_t i = 0; i < o.steps; ++i) trainer.train_step();
  if (device.is_cuda()) torch::cuda::synchronize();
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  const double slowest_secs = slowest(comm, secs);
  // Breakdown: the same number of steps with the phases timed (device synchronised between them).
  trainer.set_profiling(true);
  std::vector<double> data, fwd, bwd, com, opt, total;
  int64_t in_bwd = 0;
  for (int64_t i = 0; i < o.steps; ++i) {
    trainer.train_step();
    const auto& t = trainer.last_times();
    data.push_back(t.data);
    fwd.push_back(t.forward);
    bwd.push_back(t.backward);
    com.push_back(t.comm);
    opt.push_back(t.optimizer);
    total.push_back(t.data + t.forward + t.backward + t.comm + t.optimizer);
    in_bwd = t.buckets_in_backward;
  }
  TrainFigures f;
  f.images_per_s = static_cast<double>(o.steps * cfg.training.batch_size) / slowest_secs;
  f.step = slowest_secs / static_cast<double>(o.steps);
  f.med.data = median(data);
  f.med.forward = median(fwd);
  f.med.backward = median(bwd);
  f.med.comm = median(com);
  f.med.optimizer = median(opt);
  f.buckets = static_cast<int64_t>(trainer.reducer().buckets().size());
  f.in_backward = in_bwd;
  return f;
}

int bench_train(const TrainOptions& o, dist::Communicator& comm) {
  SCORCH_CHECK(o.steps > 0 && o.warmup >= 0, "bench train: --steps must be positive");
  Config cfg = load_config(o.common.config, o.common.sets);
  const auto device = dist::choose_device(cfg.dist.device, comm);
  SyntheticData synthetic = use_synthetic_data(cfg, o.synthetic, comm);
  TrainFigures on, off;
  {
    Config c = cfg;
    c.dist.overlap = true;
    on = time_training(c, comm, device, o);
  }
  {
    Config c = cfg;
    c.dist.overlap = false;
    off = time_training(c, comm, device, o);
  }
  synthetic.remove(comm);
  // The timed networks are gone with their trainers: FLOPs are counted on a fresh one.
  const int64_t flops = models::forward_flops_per_item(*RandomScoreModel(cfg, device).net, cfg, device, 1);
  const int64_t gpu_peak = compat::cuda_peak_allocated(device);
  if (comm.rank() == 0) {
    const std::string precision = cfg.training.precision + (cfg.training.channels_last ? "+channels_last" : "") +
                                  (device.is_cuda() && cfg.training.precision == "fp32" && cfg.training.tf32 ? "(tf32)" : "");
    fmt::print("# scorch bench train: {} ({}), {} ranks on {}, global batch {} ({} per rank{}), {}, {} threads\n",
               o.common.config.empty() ? "defaults" : o.common.config, cfg.model.name, comm.size(),
               dist::describe_device(device), cfg.training.batch_size, cfg.training.batch_size / comm.size(),
               cfg.training.grad_accum > 1 ? fmt::format(" in {} micro-batches", cfg.training.grad_accum) : "",
               precision, torch::get_num_threads());
    fmt::print("# {} timed steps after {} warm-up; breakdown = medians of a second pass with the phases timed\n",
               o.steps, o.warmup);
    fmt::print("{:<8} {:>10} {:>9} | {:>8} {:>8} {:>8} {:>9} {:>8} | {:>7} {:>9}\n", "overlap", "images/s", "step ms",
               "data", "forward", "backward", "comm exp", "opt+ema", "buckets", "in bwd");
    nlohmann::json rows = nlohmann::json::object();
    for (const auto& [label, f] : {std::pair{"on", on}, std::pair{"off", off}}) {
      fmt::print("{:<8} {:>10.2f} {:>9.1f} | {:>8.1f} {:>8.1f} {:>8.1f} {:>9.1f} {:>8.1f} | {:>7} {:>9}\n", label,
                 f.images_per_s, f.step * 1e3, f.med.data * 1e3, f.med.forward * 1e3, f.med.backward * 1e3,
                 f.med.comm * 1e3, f.med.optimizer * 1e3, f.buckets, f.in_backward);
      rows[label] = {{"images_per_s", f.images_per_s}, {"step_ms", f.step * 1e3},         {"data_ms", f.med.data * 1e3},
                     {"forward_ms", f.med.forward * 1e3}, {"backward_ms", f.med.backward * 1e3},
                     {"comm_exposed_ms", f.med.comm * 1e3}, {"optimizer_ema_ms", f.med.optimizer * 1e3},
                     {"buckets", f.buckets}, {"buckets_in_backward", f.in_backward}};
    }
    const double share_on = on.med.comm / std::max(on.med.data + on.med.forward + on.med.backward + on.med.comm + on.med.optimizer, 1e-12);
    const double share_off = off.med.comm / std::max(off.med.data + off.med.forward + off.med.backward + off.med.comm + off.med.optimizer, 1e-12);
    fmt::print("# exposed communication share of the step: overlap on {:.1f}%, off {:.1f}%; overlap on/off throughput "
               "{:.3f}x\n",
               100 * share_on, 100 * share_off, on.images_per_s / off.images_per_s);
    const Utilisation use(flops, on.images_per_s, o.peak_tflops, device);
    fmt::print("# model FLOPs {:.3f} GFLOP/image forward, training {:.2f} TFLOP/s{}{}\n", static_cast<double>(flops) / 1e9,
               use.achieved_tflops, use.mfu_text(),
               device.is_cuda() ? fmt::format("; peak GPU memory {:.0f} MiB", gpu_peak / 1048576.0) : "");
    write_figures(o.json,
                  {{"bench", "train"}, {"config", o.common.config}, {"model", cfg.model.name},
                   {"ranks", comm.size()}, {"device", dist::describe_device(device)},
                   {"global_batch", cfg.training.batch_size}, {"precision", precision},
                   {"threads", torch::get_num_threads()}, {"overlap", rows},
                   {"comm_share_on", share_on}, {"comm_share_off", share_off},
                   {"forward_flops_per_image", flops}, {"train_tflops_per_s", use.achieved_tflops},
                   {"peak_tflops", use.peak_tflops}, {"mfu", use.mfu_json()},
                   {"peak_gpu_mib", gpu_peak / 1048576.0}},
                  comm);
  }
  return 0;
}

}  // namespace

Command bench_train_command() {
  return make_command<TrainOptions>(
      "train", "images/s and step-time breakdown of training, overlap on and off",
      [](CLI::App& app, TrainOptions& o) {
        add_common(app, o.common, false);
        app.add_option("--steps", o.steps, "timed steps (per pass)")->capture_default_str();
        app.add_option("--warmup", o.warmup, "untimed steps first")->capture_default_str();
        app.add_option("--synthetic", o.synthetic,
                       "use N random images of the job's shape instead of data.path (default when data.path is empty)")
            ->capture_default_str();
        app.add_option("--peak-tflops", o.peak_tflops, "the device's dense bf16 peak for MFU (default: 790 on H100/H200)");
        app.add_option("--json", o.json, "also write the figures to this JSON file");
        app.footer("Writes nothing but a temporary synthetic dataset; use --set for dist.*, training.precision, "
                   "training.channels_last, training.grad_accum.");
      },
      bench_train);
}

}  // namespace scorch::cli
