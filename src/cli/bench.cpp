// `scorch bench`: the driver. Each benchmark lives in a file of its own
// (src/cli/bench_<name>.cpp: its options, its run and its figures, side by side from one
// run); this file lists them as subcommands and holds what they share
// (include/scorch/cli/bench.h).
//   net         forward+backward of a job's network (bench_net.cpp)
//   allreduce   collectives per size and backend, like nccl-tests (bench_allreduce.cpp)
//   train       whole training steps, overlap on and off (bench_train.cpp)
//   checkpoint  checkpoint writes against dd, training stall (bench_checkpoint.cpp)
//   data        the loader per data.source (bench_data.cpp)
//   sample      samplers on a random network (bench_sample.cpp)
//   eval        bits/dim and FID-statistics throughput (bench_eval.cpp)
// net, train, sample and eval take --json FILE for tools (jobs/gpu_check.sh reads them).
#include <ATen/CPUGeneratorImpl.h>
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "scorch/cli/bench.h"
#include "scorch/core/error.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/backend.h"
#include "scorch/dist/communicator.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/files.h"

namespace fs = std::filesystem;

namespace scorch::cli {
namespace bench {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

double slowest(dist::Communicator& comm, double seconds) {
  return comm.all_gather(torch::tensor({seconds}, torch::kFloat64)).max().item<double>();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

void SyntheticData::remove(dist::Communicator& comm) {
  comm.barrier();
  remove_now();
}

void SyntheticData::remove_now() {
  std::error_code ec;
  if (owner_ && !path_.empty()) fs::remove(path_, ec);
  path_.clear();
}

SyntheticData use_synthetic_data(Config& cfg, int64_t n_items, dist::Communicator& comm) {
  if (n_items <= 0 && !cfg.data.path.empty()) return SyntheticData("", false);
  const int64_t n = std::max<int64_t>(n_items, cfg.training.batch_size * 4);
  // Rank 0's name (its pid) for everyone.
  const std::string synthetic_path = dist::broadcast_string(
      comm, (fs::temp_directory_path() / fmt::format("scorch_bench_{}.h5", getpid())).string(), 0);
  if (comm.local_rank() == 0) {
    auto g = at::make_generator<at::CPUGeneratorImpl>(1);
    if (cfg.is_image_data()) {
      auto images = torch::empty({n, cfg.data.image_size, cfg.data.image_size, cfg.data.num_channels}, torch::kUInt8);
      for (int64_t a = 0; a < n; a += 128) {  // int64 draws in pieces: 8 bytes per pixel only for 128 images
        const int64_t b = std::min(n, a + 128);
        images.slice(0, a, b).copy_(torch::randint(0, 256, images.slice(0, a, b).sizes(), g, torch::kInt64));
      }
      data::write_images(synthetic_path, images, torch::Tensor());
    } else {
      data::write_points(synthetic_path, torch::randn({n, cfg.data.dim}, g), torch::Tensor());
    }
  }
  comm.barrier();  // written on every node before anyone reads it
  cfg.data.path = synthetic_path;
  return SyntheticData(synthetic_path, comm.local_rank() == 0);
}

void write_figures(const std::string& path, const nlohmann::json& j, const dist::Communicator& comm) {
  if (path.empty() || comm.rank() != 0) return;
  io::write_text_atomically(path, j.dump(2) + "\n");
}

double known_peak_tflops(const torch::Device& device) {
  if (!device.is_cuda()) return 0;
  const std::string name = dist::describe_device(device);
  return name.find("H100") != std::string::npos || name.find("H200") != std::string::npos ? 790.0 : 0.0;
}

Utilisation::Utilisation(int64_t forward_flops, double images_per_s, double peak_override, const torch::Device& device)
    : achieved_tflops(3.0 * static_cast<double>(forward_flops) * images_per_s / 1e12),
      peak_tflops(peak_override > 0 ? peak_override : known_peak_tflops(device)) {}

std::string Utilisation::mfu_text() const {
  return peak_tflops > 0 ? fmt::format(", MFU {:.1f}% of {:.0f} TFLOP/s", 100 * achieved_tflops / peak_tflops, peak_tflops)
                         : "";
}

nlohmann::json Utilisation::mfu_json() const {
  return peak_tflops > 0 ? nlohmann::json(achieved_tflops / peak_tflops) : nlohmann::json();
}

RandomScoreModel::RandomScoreModel(const Config& cfg, const torch::Device& device) {
  torch::manual_seed(static_cast<uint64_t>(cfg.seed));
  net = models::make_model(cfg);
  net->to(device);
  net->eval();
  sde = sde::make_sde(cfg);
  sde->to(device);
  score = models::make_score_fn(*net, *sde, cfg.training.continuous);
}

}  // namespace bench

Command bench_command() {
  // The table of benchmarks; each entry's App* is set when its subcommand is declared.
  auto cases = std::make_shared<std::vector<std::pair<Command, CLI::App*>>>();
  for (auto make : {bench_net_command, bench_allreduce_command, bench_train_command, bench_checkpoint_command,
                    bench_data_command, bench_sample_command, bench_eval_command})
    cases->emplace_back(make(), nullptr);
  Command c;
  c.name = "bench";
  c.help = "benchmarks: net (forward+backward of a network), allreduce (collectives), train (whole training steps), "
           "checkpoint (write throughput and training stall), data (the loader per data.source), sample "
           "(samplers), eval (bits/dim and FID-statistics throughput)";
  c.declare = [cases](CLI::App& app) {
    app.require_subcommand(1);
    for (auto& [cmd, sub] : *cases) {
      sub = app.add_subcommand(cmd.name, cmd.help);
      cmd.declare(*sub);
    }
  };
  c.run = [cases](dist::Communicator& comm) {
    for (auto& [cmd, sub] : *cases)
      if (*sub) return cmd.run(comm);
    SCORCH_THROW("bench: no benchmark chosen (require_subcommand lets none through)");
  };
  return c;
}

}  // namespace scorch::cli
