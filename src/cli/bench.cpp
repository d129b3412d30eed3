// `scorch bench`: forward+backward throughput and peak memory of a job's network on the
// DSM loss at a fixed batch, on the CPU or a GPU, in fp32 or bf16 autocast. The training
// step without the all-reduce and optimizer: what the network itself costs.
#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <chrono>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/losses/dsm.h"
#include "scorch/models/model.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"

namespace scorch::cli {

namespace {
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}
}  // namespace

int bench(const Common& opt, const BenchOptions& b, dist::Communicator& comm) {
  SCORCH_CHECK(b.batch > 0 && b.steps > 0, "bench: --batch and --steps must be positive");
  SCORCH_CHECK(b.precision == "fp32" || b.precision == "bf16", "bench: --precision must be fp32 or bf16, not '{}'",
               b.precision);
  Config cfg = load_config(opt.config, opt.sets);
  torch::Device device(b.device);
  SCORCH_CHECK(!device.is_cuda() || torch::cuda::is_available(), "bench: --device {} but CUDA is not available",
               b.device);
  const double rss_before_model = peak_rss_mib();
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  auto net = models::make_model(cfg);
  net->to(device);
  net->train();
  auto sde = sde::make_sde(cfg);
  auto score = models::make_score_fn(*net, *sde, cfg.training.continuous);
  auto shape = cfg.item_shape();
  shape.insert(shape.begin(), b.batch);
  auto x0 = torch::rand(shape, torch::TensorOptions().device(device));
  if (cfg.data.centered) x0 = x0 * 2 - 1;
  const bool bf16 = b.precision == "bf16";
  if (bf16) {
    if (device.is_cuda()) {
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
  }
  auto step = [&] {
    auto t = torch::rand({b.batch}, x0.options()) * (sde->T() - losses::kTrainEps) + losses::kTrainEps;
    auto z = torch::randn_like(x0);
    auto loss = losses::dsm_loss(score, *sde, x0, t, z, {cfg.training.reduce_mean, cfg.training.likelihood_weighting});
    loss.backward();
    for (auto& p : net->parameters())
      if (p.grad().defined()) p.grad().zero_();
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  for (int64_t i = 0; i < b.warmup; ++i) step();
  const double rss_before = peak_rss_mib();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < b.steps; ++i) step();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (bf16) {
    at::autocast::set_enabled(false);
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }
  if (comm.rank() == 0) {
    const double per_image = secs / static_cast<double>(b.steps * b.batch);
    fmt::print("bench: {} ({} parameters), batch {}, {} on {}, {} threads\n", opt.config.empty() ? "defaults" : opt.config,
               models::count_parameters(*net), b.batch, b.precision, b.device, torch::get_num_threads());
    fmt::print("bench: forward+backward {:.3f} s/step, {:.1f} ms/image, {:.2f} images/s over {} steps\n",
               secs / static_cast<double>(b.steps), per_image * 1e3, 1.0 / per_image, b.steps);
    fmt::print("bench: peak RSS {:.0f} MiB (model built: +{:.0f} MiB, training steps: +{:.0f} MiB over the model)\n",
               peak_rss_mib(), rss_before - rss_before_model, peak_rss_mib() - rss_before);
  }
  return 0;
}

}  // namespace scorch::cli
