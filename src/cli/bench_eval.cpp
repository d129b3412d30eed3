// `scorch bench eval`: bits/dim of a batch through the probability-flow ODE and
// FID-statistics extraction through a feature network, on random images of a job's shape:
// images/s.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <unistd.h>

#include "scorch/cli/bench.h"
#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/random.h"
#include "scorch/core/torch_compat.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/backend.h"
#include "scorch/eval/feature_net.h"
#include "scorch/eval/features.h"
#include "scorch/likelihood/likelihood.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

using namespace bench;

struct EvalOptions {
  Common common;
  int64_t bpd_images = 64, fid_images = 10000, batch = 256;
  std::string feature_net, json;
};

// A small random TorchScript feature network (two strided convolutions, ReLU, spatial mean;
// 192 features and 10 logits) for timing feature extraction when no real one is given.
std::string write_random_feature_net(const fs::path& dir) {
  torch::jit::Module m("RandomFeatures");
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  m.register_parameter("w1", torch::randn({64, 3, 3, 3}, g) * 0.2, false);
  m.register_parameter("w2", torch::randn({192, 64, 3, 3}, g) * 0.05, false);
  m.register_parameter("v", torch::randn({10, 192}, g) * 0.1, false);
  m.define(R"(
def forward(self, x):
    h = torch.relu(torch.conv2d(x, self.w1, None, [2, 2], [1, 1]))
    h = torch.relu(torch.conv2d(h, self.w2, None, [2, 2], [1, 1]))
    f = torch.mean(h, [2, 3])
    return (f, torch.matmul(f, self.v.t()))
)");
  const auto path = (dir / "random_features.pt").string();
  m.save(path);
  return path;
}

int bench_eval(const EvalOptions& o, dist::Communicator& comm) {
  SCORCH_CHECK(o.bpd_images >= 0 && o.fid_images >= 0 && o.batch > 0, "bench eval: image counts >= 0, --batch > 0");
  Config cfg = load_config(o.common.config, o.common.sets);
  SCORCH_CHECK(cfg.is_image_data(), "bench eval: needs an image job");
  const auto device = dist::choose_device(cfg.dist.device, comm);
  const auto tmp = fs::temp_directory_path() / fmt::format("scorch_bench_eval_{}_{}", getpid(), comm.rank());
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};
  const auto item = cfg.item_shape();
  const int64_t D = std::accumulate(item.begin(), item.end(), int64_t{1}, std::multiplies<int64_t>());
  // Random uint8 images of the job's shape, made on the CPU (as a data set would arrive).
  auto images = [&](int64_t begin, int64_t count) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(1000 + static_cast<uint64_t>(begin));
    return torch::randint(0, 256, {count, cfg.data.image_size, cfg.data.image_size, cfg.data.num_channels}, g,
                          torch::kInt64).to(torch::kUInt8);
  };
  nlohmann::json j{{"bench", "eval"}, {"config", o.common.config}, {"device", dist::describe_device(device)}};
  if (comm.rank() == 0)
    fmt::print("# scorch bench eval: {} on {}, {} ranks, random images of shape [{}]\n",
               o.common.config.empty() ? "defaults" : o.common.config, dist::describe_device(device), comm.size(),
               fmt::join(item, ","));
  if (o.bpd_images > 0) {
    RandomScoreModel m(cfg, device);
    auto gen = make_generator(device, 5);
    const auto on = torch::TensorOptions().device(device);
    auto x = data::scale(data::images_to_unit(images(0, o.bpd_images).to(device),
                                              torch::rand(with_batch(o.bpd_images, item), gen, on.dtype(torch::kFloat32))),
                         cfg.data.centered);
    auto e = likelihood::rademacher(with_batch(o.bpd_images, item), gen);
    comm.barrier();
    const auto t0 = clock_type::now();
    auto res = likelihood::logp_ode(m.score, *m.sde, x, e, {cfg.eval.rtol, cfg.eval.atol});
    if (device.is_cuda()) torch::cuda::synchronize();
    const double secs = slowest(comm, std::chrono::duration<double>(clock_type::now() - t0).count());
    const double bpd = likelihood::bits_per_dim(res.logp, D, likelihood::bits_per_dim_offset(cfg)).mean().item<double>();
    if (comm.rank() == 0)
      fmt::print("bits/dim: {} images in one batch, {} drift evaluations (forward + vector-Jacobian product), {:.2f} s, "
                 "{:.2f} images/s (mean {:.3f} bits/dim of a random network on random images)\n",
                 o.bpd_images, res.nfe, secs, o.bpd_images / secs, bpd);
    j["bpd"] = {{"images", o.bpd_images}, {"nfe", res.nfe}, {"seconds", secs}, {"images_per_s", o.bpd_images / secs},
                {"bits_per_dim", bpd}, {"rtol", cfg.eval.rtol}, {"atol", cfg.eval.atol}};
  }
  if (o.fid_images > 0) {
    const std::string path = o.feature_net.empty() ? write_random_feature_net(tmp) : o.feature_net;
    auto fnet = eval::load_feature_net(path, device);
    comm.barrier();
    const auto t0 = clock_type::now();
    auto feats = eval::compute_features(comm, *fnet, device, o.fid_images, o.batch, (tmp / "features").string(),
                                        "dynamic", [&](int64_t begin, int64_t count) {
                                          return data::images_to_unit(images(begin, count));
                                        });
    const double secs = slowest(comm, std::chrono::duration<double>(clock_type::now() - t0).count());
    if (comm.rank() == 0)
      fmt::print("FID statistics: {} images through {} ({} features), batch {}, {:.2f} s, {:.1f} images/s (moments over "
                 "{} images)\n",
                 o.fid_images, fnet->describe(), feats.dim, o.batch, secs, o.fid_images / secs, feats.moments.n);
    j["fid_stats"] = {{"images", o.fid_images}, {"feature_net", fnet->describe()}, {"features", feats.dim},
                      {"batch", o.batch}, {"seconds", secs}, {"images_per_s", o.fid_images / secs}};
  }
  j["peak_gpu_mib"] = compat::cuda_peak_allocated(device) / 1048576.0;
  write_figures(o.json, j, comm);
  return 0;
}

}  // namespace

Command bench_eval_command() {
  return make_command<EvalOptions>(
      "eval", "bits/dim and FID-statistics throughput on random images of a job's shape",
      [](CLI::App& app, EvalOptions& o) {
        add_common(app, o.common, false);
        app.add_option("--bpd-images", o.bpd_images, "images in the bits/dim batch (0: skip)")->capture_default_str();
        app.add_option("--fid-images", o.fid_images, "images through the feature network (0: skip)")->capture_default_str();
        app.add_option("--batch", o.batch, "feature-extraction batch")->capture_default_str();
        app.add_option("--feature-net", o.feature_net,
                       "TorchScript feature network (default: a small random one written to a temporary folder)");
        app.add_option("--json", o.json, "also write the figures to this JSON file");
        app.footer("bits/dim through the probability-flow ODE (eval.rtol, eval.atol) with a random network; features "
                   "through the farm into a temporary cache, removed afterwards.");
      },
      bench_eval);
}

}  // namespace scorch::cli
