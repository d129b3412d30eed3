// `scorch bench net`: forward+backward of a job's network on the DSM loss (no optimizer, no
// communication): time per image, model FLOPs and MFU, peak memory; fp32, tf32 or bf16
// autocast, optionally channels-last.
#include <CLI/CLI.hpp>
#include <chrono>

#include "scorch/cli/bench.h"
#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/torch_compat.h"
#include "scorch/dist/backend.h"
#include "scorch/losses/dsm.h"
#include "scorch/models/model.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"

namespace scorch::cli {

namespace {

using namespace bench;

struct NetOptions {
  Common common;
  int64_t batch = 8, steps = 5, warmup = 1;
  std::string precision = "fp32", json;
  bool channels_last = false;
  double peak_tflops = 0;
};

int bench_net(const NetOptions& b, dist::Communicator& comm) {
  SCORCH_CHECK(b.batch > 0 && b.steps > 0, "bench net: --batch and --steps must be positive");
  Config cfg = load_config(b.common.config, b.common.sets);
  const auto device = dist::choose_device(cfg.dist.device, comm);
  const double rss_before_model = peak_rss_mib();
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  auto net = models::make_model(cfg);
  net->to(device);
  net->train();
  const bool image = cfg.is_image_data();
  SCORCH_CHECK(!b.channels_last || image, "bench net: --channels-last needs image data (this job has points)");
  if (b.channels_last) models::to_channels_last(*net);
  // tf32: float32 storage, TF32 tensor-core matmuls and convolutions (CUDA only).
  if (device.is_cuda()) compat::set_tf32(b.precision == "tf32");
  auto sde = sde::make_sde(cfg);
  sde->to(device);
  auto score = models::make_score_fn(*net, *sde, cfg.training.continuous);
  auto x0 = torch::rand(with_batch(b.batch, cfg.item_shape()), torch::TensorOptions().device(device));
  if (cfg.data.centered) x0 = x0 * 2 - 1;
  if (b.channels_last) x0 = x0.contiguous(torch::MemoryFormat::ChannelsLast);
  const bool bf16 = b.precision == "bf16";
  auto step = [&] {
    auto t = torch::rand({b.batch}, x0.options()) * (sde->T() - losses::kTrainEps) + losses::kTrainEps;
    auto z = torch::randn_like(x0);
    torch::Tensor loss;
    {
      compat::AutocastGuard autocast(device, bf16);
      loss = losses::dsm_loss(score, *sde, x0, t, z, {cfg.training.reduce_mean, cfg.training.likelihood_weighting});
    }
    loss.backward();
    for (auto& p : net->parameters())
      if (p.grad().defined()) p.grad().zero_();
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  for (int64_t i = 0; i < b.warmup; ++i) step();
  const double rss_before = peak_rss_mib();
  std::vector<double> times;
  auto t0 = clock_type::now();
  for (int64_t i = 0; i < b.steps; ++i) {
    auto s0 = clock_type::now();
    step();
    times.push_back(std::chrono::duration<double>(clock_type::now() - s0).count());
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  const int64_t flops = models::forward_flops_per_item(*net, cfg, device, 1);
  if (comm.rank() == 0) {
    const double per_image = secs / static_cast<double>(b.steps * b.batch);
    const double ips = 1.0 / per_image;
    const Utilisation use(flops, ips, b.peak_tflops, device);
    const int64_t gpu_peak = compat::cuda_peak_allocated(device);
    const std::string layout = b.precision + (b.channels_last ? "+channels_last" : "");
    fmt::print("bench: {} ({} parameters), batch {}, {} on {}, {} threads\n",
               b.common.config.empty() ? "defaults" : b.common.config, models::count_parameters(*net), b.batch, layout,
               dist::describe_device(device), torch::get_num_threads());
    fmt::print("bench: forward+backward {:.3f} s/step (median {:.3f}), {:.1f} ms/image, {:.2f} images/s over {} steps\n",
               secs / static_cast<double>(b.steps), median(times), per_image * 1e3, ips, b.steps);
    fmt::print("bench: model FLOPs {:.3f} GFLOP/image forward (convolutions and matrix products, 2 per multiply-add; "
               "training step = 3x): {:.2f} TFLOP/s{}\n",
               static_cast<double>(flops) / 1e9, use.achieved_tflops, use.mfu_text());
    if (device.is_cuda()) {
      fmt::print("bench: peak GPU memory {:.0f} MiB allocated (CUDA caching allocator)\n", gpu_peak / 1048576.0);
    } else {
      fmt::print("bench: peak RSS {:.0f} MiB (model built: +{:.0f} MiB, training steps: +{:.0f} MiB over the model)\n",
                 peak_rss_mib(), rss_before - rss_before_model, peak_rss_mib() - rss_before);
    }
    write_figures(b.json,
                  {{"bench", "net"}, {"config", b.common.config}, {"model", cfg.model.name},
                   {"parameters", models::count_parameters(*net)}, {"batch", b.batch}, {"precision", b.precision},
                   {"channels_last", b.channels_last}, {"device", dist::describe_device(device)},
                   {"threads", torch::get_num_threads()}, {"steps", b.steps}, {"step_s_median", median(times)},
                   {"images_per_s", ips}, {"forward_flops_per_image", flops},
                   {"train_tflops_per_s", use.achieved_tflops}, {"peak_tflops", use.peak_tflops}, {"mfu", use.mfu_json()},
                   {"peak_gpu_mib", gpu_peak / 1048576.0}, {"peak_rss_mib", peak_rss_mib()}},
                  comm);
  }
  return 0;
}

}  // namespace

Command bench_net_command() {
  return make_command<NetOptions>(
      "net", "forward+backward time per image and peak memory of a job's network (DSM loss)",
      [](CLI::App& app, NetOptions& o) {
        add_common(app, o.common, false);
        app.add_option("--batch", o.batch, "images per step")->capture_default_str();
        app.add_option("--steps", o.steps, "timed steps")->capture_default_str();
        app.add_option("--warmup", o.warmup, "untimed steps first")->capture_default_str();
        app.add_option("--precision", o.precision, "fp32, tf32 (fp32 with TF32 tensor cores, CUDA), or bf16 (autocast)")
            ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))
            ->capture_default_str();
        app.add_flag("--channels-last", o.channels_last, "channels-last (NHWC) weights and images");
        app.add_option("--peak-tflops", o.peak_tflops,
                       "the device's dense bf16 peak for model FLOPs utilisation (default: 790 on H100/H200, else none)");
        app.add_option("--json", o.json, "also write the figures to this JSON file");
        app.footer("The device is dist.device (--set dist.device=cuda). Model FLOPs are counted once from the layer "
                   "shapes (convolutions and matrix products, 2 per multiply-add); MFU = 3 x forward FLOPs x images/s / "
                   "peak.");
      },
      bench_net);
}

}  // namespace scorch::cli
