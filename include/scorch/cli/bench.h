// `scorch bench`: one file per benchmark (src/cli/bench_<name>.cpp), as nccl-tests has one
// per collective, over a shared driver (src/cli/bench.cpp) that holds the subcommand table
// and what the benchmarks share: timing helpers, the slowest rank's time, a synthetic data
// set, the model-FLOPs utilisation, a network with random weights and the --json figures
// that tools (jobs/gpu_check.sh) collect.
#pragma once
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scorch/cli/commands.h"
#include "scorch/core/config.h"
#include "scorch/dist/communicator.h"
#include "scorch/models/model.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"

namespace scorch::cli {

// The benchmarks, each a subcommand of `scorch bench` with its own options.
Command bench_net_command();         // forward+backward of a network: s/image, FLOPs, MFU, memory
Command bench_allreduce_command();   // all-reduce time and bus bandwidth per size and backend
Command bench_train_command();       // whole training steps, overlap on and off
Command bench_checkpoint_command();  // checkpoint writes against dd; training stall, sync vs async
Command bench_data_command();        // the loader per data.source: images/s and memory
Command bench_sample_command();      // samplers on a random network: images/s, NFE, ms per NFE
Command bench_eval_command();        // bits/dim and FID-statistics throughput

namespace bench {

using clock_type = std::chrono::steady_clock;

// Peak resident set size of this process in MiB (getrusage).
double peak_rss_mib();
// The slowest rank's `seconds` (collective): what a synchronous job waits for.
double slowest(dist::Communicator& comm, double seconds);
double median(std::vector<double> v);

// A bench run's synthetic data set (use_synthetic_data): each node's copy is removed by the
// node's first rank when this goes out of scope, also when the bench fails part-way.
class SyntheticData {
 public:
  SyntheticData(std::string path, bool owner) : path_(std::move(path)), owner_(owner) {}
  SyntheticData(SyntheticData&& other) noexcept : path_(std::move(other.path_)), owner_(other.owner_) {
    other.path_.clear();
  }
  SyntheticData(const SyntheticData&) = delete;
  SyntheticData& operator=(const SyntheticData&) = delete;
  SyntheticData& operator=(SyntheticData&&) = delete;
  ~SyntheticData() { remove_now(); }
  // Waits until no rank reads the data any more, then removes it. Collective.
  void remove(dist::Communicator& comm);

 private:
  void remove_now();
  std::string path_;
  bool owner_;
};

// Random items of the job's shape in a temporary file when `n_items` > 0 or data.path is
// empty (the first rank of each node writes the same items into the node's own temporary
// folder, every rank reads its node's copy); points cfg.data.path at it. Collective.
SyntheticData use_synthetic_data(Config& cfg, int64_t n_items, dist::Communicator& comm);

// --json FILE: the figures of a bench as one JSON object (written atomically by rank 0), for
// scripts such as jobs/gpu_check.sh that collect them into a report. Nothing when `path` is "".
void write_figures(const std::string& path, const nlohmann::json& j, const dist::Communicator& comm);

// The dense bf16 tensor-core peak (TFLOP/s) of the GPU `device` when known (H100/H200:
// about 790, ../shared/GPU.md), else 0: model FLOPs utilisation is printed only against a
// stated peak (--peak-tflops overrides).
double known_peak_tflops(const torch::Device& device);

// Training throughput in FLOPs: forward FLOPs per image x 3 (backward is 2x forward) x
// images/s, against the peak (--peak-tflops, else known_peak_tflops; 0: unknown).
struct Utilisation {
  double achieved_tflops = 0, peak_tflops = 0;
  Utilisation(int64_t forward_flops, double images_per_s, double peak_override, const torch::Device& device);
  // ", MFU 41.0% of 790 TFLOP/s", or "" without a peak.
  std::string mfu_text() const;
  nlohmann::json mfu_json() const;
};

// A job's network with random weights (seeded by cfg.seed), in eval mode on `device`, its
// SDE and score: what bench sample, eval and train (for its FLOPs) run.
struct RandomScoreModel {
  models::ScoreNetPtr net;
  std::unique_ptr<sde::SDE> sde;
  models::ScoreFn score;
  RandomScoreModel(const Config& cfg, const torch::Device& device);
};

}  // namespace bench
}  // namespace scorch::cli
