// `scorch bench`: measurements users run on their own machines, each printing its figures
// side by side from one run.
//   net        forward+backward of a job's network on the DSM loss (no optimizer, no
//              communication): time per image, model FLOPs and MFU, peak memory; fp32,
//              tf32 or bf16 autocast, optionally channels-last.
//   allreduce  like nccl-tests' all_reduce_perf: sizes from --min-bytes to --max-bytes
//              (x2), time, algorithm and bus bandwidth for each backend, beside a plain
//              MPI_Allreduce loop; inputs are crafted so that every reduced value is exactly
//              predictable, errors are counted on every rank and all-reduced into the exit
//              status.
//   train      whole training steps of a job (data, forward, backward, exposed
//              communication, optimizer + EMA) with overlap on and off: images/s and the
//              step-time breakdown.
//   sample     samplers (PC, fast solvers, RK45) on the job's network with random weights:
//              images/s, NFE and time per score evaluation.
//   eval       bits/dim of a batch and FID-statistics extraction through a feature network,
//              on random images: images/s.
// net, train, sample and eval take --json FILE for tools (jobs/gpu_check.sh reads them).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/names.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/core/torch_compat.h"
#include "scorch/data/dataset.h"
#include "scorch/data/source.h"
#include "scorch/eval/feature_net.h"
#include "scorch/eval/features.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/sampling/sampler.h"
#include "scorch/io/files.h"
#include "scorch/io/tensorboard.h"
#include "scorch/dist/backend.h"
#include "scorch/dist/sharding.h"
#include "scorch/losses/dsm.h"
#include "scorch/models/model.h"
#include "scorch/models/score_fn.h"
#include "scorch/sde/sde.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

using clock_type = std::chrono::steady_clock;

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

// The slowest rank's `seconds` (collective): what a synchronous job waits for.
double slowest(dist::Communicator& comm, double seconds) {
  return comm.all_gather(torch::tensor({seconds}, torch::kFloat64)).max().item<double>();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// ---------------------------------------------------------------- bench data

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
  void remove(dist::Communicator& comm) {
    comm.barrier();
    remove_now();
  }

 private:
  void remove_now() {
    std::error_code ec;
    if (owner_ && !path_.empty()) fs::remove(path_, ec);
    path_.clear();
  }
  std::string path_;
  bool owner_;
};

SyntheticData use_synthetic_data(Config& cfg, int64_t n_items, dist::Communicator& comm);

struct DataOptions {
  Common common;
  int64_t steps = 100, synthetic = 0;
  std::string source = "all";
};

// This process's resident and proportional set sizes in MB (/proc/self/smaps_rollup): PSS
// splits shared pages among the processes mapping them, so PSS summed over a node's ranks
// is the node's memory for the data.
std::pair<double, double> rss_pss_mb() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  double rss = 0, pss = 0;
  while (std::getline(in, line)) {  // the first line names the mapping range; then "Key: value kB"
    if (line.rfind("Rss:", 0) == 0) rss = std::atof(line.c_str() + 4) / 1024.0;
    if (line.rfind("Pss:", 0) == 0) pss = std::atof(line.c_str() + 4) / 1024.0;
  }
  return {rss, pss};
}

int bench_data(const DataOptions& o, dist::Communicator& comm) {
  SCORCH_CHECK(o.steps > 0, "bench data: --steps must be positive");
  Config cfg = load_config(o.common.config, o.common.sets);
  SyntheticData synthetic = use_synthetic_data(cfg, o.synthetic, comm);
  std::vector<std::string> kinds;  // every source but `auto` (core/names.h), or the one asked for
  for (const auto& k : names::data_sources())
    if (k != "auto" && (o.source == "all" || o.source == k)) kinds.push_back(k);
  const auto share = dist::batch_share(cfg.training.batch_size, comm.rank(), comm.size(), 1);
  const auto info = data::inspect(cfg.data.path);
  if (comm.rank() == 0) {
    fmt::print("# scorch bench data: {} ({} rows of [{}], {}), {} ranks ({} on this node), {} rows per rank and step, "
               "one producer thread per rank, prefetch {}, finishing on the host (dequantise, flip, scale)\n",
               cfg.data.path, info.shape[0], fmt::join(info.shape.begin() + 1, info.shape.end(), ","),
               format_bytes(static_cast<double>(info.bytes)), comm.size(), comm.local_size(), share.size(),
               std::max<int64_t>(cfg.data.prefetch, 1));
    fmt::print("# batch = rows + the keyed per-row noise (z, dequantisation, time, flip) + dequantise/flip/scale "
               "(what training consumes); read = the source's gather of the same number of random rows alone\n");
    fmt::print("{:<12} {:>9} {:>14} {:>14} {:>14} {:>13} {:>13} {:>14}\n", "source", "open s", "batch img/s/rk",
               "read img/s/rk", "read MB/s/rk", "RSS/rank MB", "PSS/node MB", "allocated MB");
  }
  for (const auto& kind : kinds) {
    comm.barrier();
    const auto before = rss_pss_mb();
    auto t0 = clock_type::now();
    auto src = data::open_source(info, {kind, cfg.data.cache_mb, 0}, &comm);
    const double open_s = slowest(comm, std::chrono::duration<double>(clock_type::now() - t0).count());
    train::BatchMaker mk(cfg, *src, share, /*pinned=*/false, 1.0, 1000, false, /*finish_on_host=*/true);
    {
      train::Prefetcher warm([&](int64_t s) { return mk.make(s); }, 0, 2, 1);
      warm.take(0);
      warm.take(1);
    }
    comm.barrier();
    t0 = clock_type::now();
    {
      train::Prefetcher pf([&](int64_t s) { return mk.make(s); }, 2, 2 + o.steps, std::max<int64_t>(cfg.data.prefetch, 1));
      for (int64_t s = 2; s < 2 + o.steps; ++s) pf.take(s);
    }
    const double secs = slowest(comm, std::chrono::duration<double>(clock_type::now() - t0).count());
    // The source alone: random rows of the same count, gathered on this thread.
    auto g = make_generator(torch::Device(torch::kCPU), 5 + static_cast<uint64_t>(comm.rank()));
    auto shape = src->item_shape();
    shape.insert(shape.begin(), share.size());
    auto rows_out = torch::empty(shape, torch::TensorOptions().dtype(src->dtype()));
    comm.barrier();
    t0 = clock_type::now();
    for (int64_t s = 0; s < o.steps; ++s) src->gather(torch::randint(0, src->size(), {share.size()}, g, torch::kInt64), rows_out);
    const double read_secs = slowest(comm, std::chrono::duration<double>(clock_type::now() - t0).count());
    const auto after = rss_pss_mb();
    const double rss = comm.all_gather(torch::tensor({after.first - before.first}, torch::kFloat64)).max().item<double>();
    auto pss = torch::tensor({after.second - before.second}, torch::kFloat64);
    comm.allreduce_sum(pss);  // all ranks of this single-node measurement
    auto alloc = torch::tensor({static_cast<double>(src->resident_bytes()) / 1048576.0}, torch::kFloat64);
    comm.allreduce_sum(alloc);
    const double ips = static_cast<double>(o.steps * share.size()) / secs;
    const double rps = static_cast<double>(o.steps * share.size()) / read_secs;
    if (comm.rank() == 0) {
      fmt::print("{:<12} {:>9.2f} {:>14.0f} {:>14.0f} {:>14.1f} {:>13.1f} {:>13.1f} {:>14.1f}   ({})\n", kind, open_s, ips,
                 rps, rps * static_cast<double>(info.bytes) / static_cast<double>(info.shape[0]) / 1e6, rss,
                 pss.item<double>() / static_cast<double>(comm.size()) * comm.local_size(), alloc.item<double>(),
                 src->describe());
    }
  }
  // The cost of one TensorBoard log line (13 scalars, one record, one flush).
  if (comm.rank() == 0) {
    const auto dir = fs::temp_directory_path() / fmt::format("scorch_bench_tb_{}", getpid());
    {
      io::EventWriter ev(dir.string());
      std::vector<std::pair<std::string, double>> scalars;
      for (const auto& c : train::train_log_columns()) scalars.emplace_back("train/" + c, 1.0);
      auto t0 = clock_type::now();
      constexpr int kLines = 2000;
      for (int i = 0; i < kLines; ++i) ev.scalars(i, 0.0, scalars);
      fmt::print("TensorBoard: {:.1f} us per log line of {} scalars\n",
                 1e6 * std::chrono::duration<double>(clock_type::now() - t0).count() / kLines, scalars.size());
    }
    fs::remove_all(dir);
  }
  synthetic.remove(comm);
  return 0;
}

// ---------------------------------------------------------------- figures for tools
// --json FILE: the figures of a bench as one JSON object (written atomically by rank 0), for
// scripts such as jobs/gpu_check.sh that collect them into a report.
void write_figures(const std::string& path, const nlohmann::json& j, const dist::Communicator& comm) {
  if (path.empty() || comm.rank() != 0) return;
  io::write_text_atomically(path, j.dump(2) + "\n");
}

// The dense bf16 tensor-core peak (TFLOP/s) of the GPU `device` is, when known (H100/H200:
// about 790, ../shared/GPU.md), else 0: model FLOPs utilisation is printed only against a
// stated peak (--peak-tflops overrides).
double known_peak_tflops(const torch::Device& device) {
  if (!device.is_cuda()) return 0;
  const std::string name = dist::describe_device(device);
  return name.find("H100") != std::string::npos || name.find("H200") != std::string::npos ? 790.0 : 0.0;
}

// Training throughput in FLOPs: forward FLOPs per image x 3 (backward is 2x forward) x
// images/s, against the peak (--peak-tflops, else known_peak_tflops; 0: unknown).
struct Utilisation {
  double achieved_tflops = 0, peak_tflops = 0;
  Utilisation(int64_t forward_flops, double images_per_s, double peak_override, const torch::Device& device)
      : achieved_tflops(3.0 * static_cast<double>(forward_flops) * images_per_s / 1e12),
        peak_tflops(peak_override > 0 ? peak_override : known_peak_tflops(device)) {}
  // ", MFU 41.0% of 790 TFLOP/s", or "" without a peak.
  std::string mfu_text() const {
    return peak_tflops > 0 ? fmt::format(", MFU {:.1f}% of {:.0f} TFLOP/s", 100 * achieved_tflops / peak_tflops, peak_tflops)
                           : "";
  }
  nlohmann::json mfu_json() const { return peak_tflops > 0 ? nlohmann::json(achieved_tflops / peak_tflops) : nlohmann::json(); }
};

// A job's network with random weights (seeded by `seed`), in eval mode on `device`, its SDE
// and score: what bench sample and bench eval run.
struct RandomScoreModel {
  models::ScoreNetPtr net;
  std::unique_ptr<sde::SDE> sde;
  models::ScoreFn score;
  RandomScoreModel(const Config& cfg, const torch::Device& device) {
    torch::manual_seed(static_cast<uint64_t>(cfg.seed));
    net = models::make_model(cfg);
    net->to(device);
    net->eval();
    sde = sde::make_sde(cfg);
    sde->to(device);
    score = models::make_score_fn(*net, *sde, cfg.training.continuous);
  }
};

// ---------------------------------------------------------------- bench net
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

// ---------------------------------------------------------------- bench allreduce
struct AllreduceOptions {
  std::string min_bytes = "8", max_bytes = "256M";
  int iters = 20, warmup = 5;
  std::string backend = "all";
  std::string device = "auto";
};

int64_t parse_bytes(const std::string& s) {
  SCORCH_CHECK(!s.empty(), "empty size");
  size_t pos = 0;
  const double v = std::stod(s, &pos);
  const std::string unit = s.substr(pos);
  double m = 1;
  if (unit == "K" || unit == "k") m = 1024;
  else if (unit == "M") m = 1024.0 * 1024;
  else if (unit == "G") m = 1024.0 * 1024 * 1024;
  else SCORCH_CHECK(unit.empty(), "size '{}': unit must be K, M or G", s);
  return static_cast<int64_t>(v * m);
}

// Rank r holds (r + 1) * (j % 7 + 1) at element j: every sum is an integer far below 2^24,
// exact in float32 whatever the order of summation.
torch::Tensor crafted(int64_t count, int rank, const torch::Device& device) {
  auto j = torch::arange(count, torch::kInt64).remainder(7) + 1;
  return (j * (rank + 1)).to(torch::kFloat32).to(device);
}

int64_t count_errors(const torch::Tensor& reduced, int world) {
  const int64_t count = reduced.numel();
  auto expect = crafted(count, 0, torch::kCPU) * static_cast<float>(world * (world + 1) / 2);
  return (reduced.cpu() != expect).sum().item<int64_t>();
}

int bench_allreduce(const AllreduceOptions& o, dist::Communicator& comm) {
  const int64_t lo = std::max<int64_t>(parse_bytes(o.min_bytes), 4), hi = parse_bytes(o.max_bytes);
  SCORCH_CHECK(hi >= lo, "--max-bytes must be at least --min-bytes");
  SCORCH_CHECK(o.iters > 0 && o.warmup >= 0, "--iters must be positive");
  SCORCH_CHECK(o.backend == "all" || o.backend == "mpi" || o.backend == "nccl", "--backend: all, mpi or nccl");
  const auto device = dist::choose_device(o.device, comm);
  std::vector<std::pair<std::string, std::shared_ptr<dist::Communicator>>> backends;
  if (o.backend != "nccl") backends.emplace_back("mpi", dist::make_data_communicator("mpi", device, comm));
  if (o.backend != "mpi" && device.is_cuda() && dist::nccl_compiled())
    backends.emplace_back("nccl", dist::make_data_communicator("nccl", device, comm));
  SCORCH_CHECK(!backends.empty(), "--backend nccl: needs a GPU and a build with NCCL");
  const int W = comm.size();
  const double bus_factor = W > 1 ? 2.0 * (W - 1) / W : 1.0;
  if (comm.rank() == 0) {
    fmt::print("# scorch bench allreduce: {} ranks, float32 sum in place, {} iterations (+{} warm-up), tensors on {}\n",
               W, o.iters, o.warmup, dist::describe_device(device));
    fmt::print("# bus bandwidth = algorithm bandwidth x 2(W-1)/W; time = slowest rank; errors over all ranks\n");
    std::string head = fmt::format("{:>12} {:>11}", "size(B)", "count");
    for (const auto& b : backends) head += fmt::format(" | {:>9} {:>8} {:>8} {:>6}", b.first + "(us)", "algbw", "busbw", "errors");
    head += fmt::format(" | {:>9} {:>8} {:>8}", "plain(us)", "algbw", "busbw");
    fmt::print("{}\n", head);
  }
  int64_t total_errors = 0;
  std::vector<double> bus_sums(backends.size() + 1, 0.0);
  int rows = 0;
  for (int64_t bytes = lo; bytes <= hi; bytes *= 2) {
    const int64_t count = std::max<int64_t>(bytes / 4, 1);
    std::string line = fmt::format("{:>12} {:>11}", count * 4, count);
    // Time (slowest rank), algorithm and bus bandwidth of column `column` for `mine` seconds per call.
    auto cell = [&](double mine, size_t column) {
      const double t = slowest(comm, mine), algbw = static_cast<double>(count * 4) / t / 1e9;
      bus_sums[column] += algbw * bus_factor;
      return fmt::format(" | {:>9.1f} {:>8.3f} {:>8.3f}", t * 1e6, algbw, algbw * bus_factor);
    };
    for (size_t bi = 0; bi < backends.size(); ++bi) {
      auto& b = *backends[bi].second;
      auto buf = torch::zeros({count}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
      for (int i = 0; i < o.warmup; ++i) b.allreduce_sum(buf);
      if (device.is_cuda()) torch::cuda::synchronize();
      comm.barrier();
      auto t0 = clock_type::now();
      std::vector<dist::WorkPtr> works;
      for (int i = 0; i < o.iters; ++i) works.push_back(b.iallreduce_sum(buf));
      for (auto& w : works) w->wait();
      if (device.is_cuda()) torch::cuda::synchronize();
      line += cell(std::chrono::duration<double>(clock_type::now() - t0).count() / o.iters, bi);
      // Correctness on crafted inputs, in a fresh buffer.
      auto check = crafted(count, comm.rank(), device);
      b.allreduce_sum(check);
      auto errs = torch::tensor({count_errors(check, W)}, torch::kInt64);
      comm.allreduce_sum(errs);
      const int64_t e = errs.item<int64_t>();
      total_errors += e;
      line += fmt::format(" {:>6}", e);
    }
    auto plain = torch::zeros({count}, torch::kFloat32);
    line += cell(dist::time_plain_mpi_allreduce(plain, o.iters, o.warmup), backends.size());
    ++rows;
    if (comm.rank() == 0) fmt::print("{}\n", line);
  }
  if (comm.rank() == 0) {
    std::string avg = "# average bus bandwidth (GB/s):";
    for (size_t bi = 0; bi < backends.size(); ++bi) avg += fmt::format(" {} {:.3f}", backends[bi].first, bus_sums[bi] / rows);
    avg += fmt::format(", plain MPI_Allreduce loop {:.3f}", bus_sums.back() / rows);
    fmt::print("{}\n# errors: {}\n", avg, total_errors);
  }
  return total_errors == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- bench train
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

// Random items of the job's shape in a temporary file when `n` > 0 or data.path is empty
// (the first rank of each node writes the same items into the node's own temporary folder,
// every rank reads its node's copy); points cfg.data.path at it and returns its path ("" if
// the job's own data is used). Collective.
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

// ---------------------------------------------------------------- bench checkpoint
struct CheckpointOptions {
  Common common;
  int64_t steps = 5, checkpoints = 4, synthetic = 0;
};

struct CheckpointFigures {
  double stall_ms = 0, overhead_ms = 0, write_s = 0;
  int64_t bytes = 0;
};

// Trains K rounds of `steps` steps, checkpointing after each round, and compares with the
// same rounds without checkpoints: the stall is the time save_checkpoint takes on the
// training thread, the overhead the extra wall time per checkpoint (the background write
// competes for the cores).
CheckpointFigures time_checkpoints(const Config& cfg, dist::Communicator& comm, const torch::Device& device,
                                   const std::string& dir, const CheckpointOptions& o) {
  train::Trainer trainer(cfg, comm, dir, device);
  for (int i = 0; i < 2; ++i) trainer.train_step();
  auto rounds = [&](bool save) {
    std::vector<double> stalls;
    comm.barrier();
    auto t0 = clock_type::now();
    for (int64_t k = 0; k < o.checkpoints; ++k) {
      for (int64_t i = 0; i < o.steps; ++i) trainer.train_step();
      if (device.is_cuda()) torch::cuda::synchronize();
      if (save) {
        auto s0 = clock_type::now();
        trainer.save_checkpoint(/*wait=*/false);
        stalls.push_back(std::chrono::duration<double>(clock_type::now() - s0).count());
      }
    }
    trainer.wait_for_checkpoints();
    if (device.is_cuda()) torch::cuda::synchronize();
    return std::pair{std::chrono::duration<double>(clock_type::now() - t0).count(), stalls};
  };
  const auto [plain_s, none] = rounds(false);
  const auto [with_s, stalls] = rounds(true);
  CheckpointFigures f;
  f.stall_ms = stalls.empty() ? 0 : median(stalls) * 1e3;
  f.overhead_ms = (slowest(comm, with_s) - slowest(comm, plain_s)) / static_cast<double>(o.checkpoints) * 1e3;
  const auto st = trainer.checkpoint_stats();
  f.write_s = st.writes > 0 ? st.total_write_s / static_cast<double>(st.writes) : 0;
  f.bytes = st.last_bytes;
  return f;
}

int bench_checkpoint(const CheckpointOptions& o, dist::Communicator& comm) {
  SCORCH_CHECK(!o.common.workdir.empty(), "bench checkpoint needs --workdir DIR on the disk to measure");
  SCORCH_CHECK(o.steps > 0 && o.checkpoints > 0, "bench checkpoint: --steps and --checkpoints must be positive");
  Config cfg = load_config(o.common.config, o.common.sets);
  const auto device = dist::choose_device(cfg.dist.device, comm);
  SyntheticData synthetic = use_synthetic_data(cfg, o.synthetic, comm);
  const std::string dir = o.common.workdir + "/scorch_bench_checkpoint";
  std::map<std::string, CheckpointFigures> figs;
  for (bool async : {false, true}) {
    Config c = cfg;
    c.checkpoint.async = async;
    c.checkpoint.keep = 1;
    figs[async ? "async" : "sync"] = time_checkpoints(c, comm, device, dir + (async ? "/async" : "/sync"), o);
  }
  synthetic.remove(comm);
  if (comm.rank() == 0) {
    // dd of the same size to the same folder, flushed to the disk like a checkpoint (fsync).
    const auto mb = std::max<int64_t>(1, (figs["sync"].bytes + (1 << 20) - 1) >> 20);
    const std::string ddfile = dir + "/dd.tmp";
    const auto t0 = clock_type::now();
    const int rc = std::system(fmt::format("dd if=/dev/zero of='{}' bs=1M count={} conv=fsync status=none", ddfile, mb).c_str());
    const double dd_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::error_code ec;
    fs::remove_all(dir, ec);
    fmt::print("# scorch bench checkpoint: {} ({}, nf {}), {} ranks on {}, {} checkpoints every {} steps, folder {}\n",
               o.common.config.empty() ? "defaults" : o.common.config, cfg.model.name, cfg.model.nf, comm.size(),
               dist::describe_device(device), o.checkpoints, o.steps, o.common.workdir);
    fmt::print("{:<7} {:>9} {:>12} {:>16} {:>10} {:>9}\n", "mode", "file MB", "stall ms", "overhead ms/ckpt",
               "write s", "MB/s");
    for (const auto& [mode, f] : figs) {
      fmt::print("{:<7} {:>9.1f} {:>12.1f} {:>16.1f} {:>10.3f} {:>9.1f}\n", mode, f.bytes / 1e6, f.stall_ms,
                 f.overhead_ms, f.write_s, f.write_s > 0 ? f.bytes / 1e6 / f.write_s : 0.0);
    }
    fmt::print("{:<7} {:>9.1f} {:>12} {:>16} {:>10.3f} {:>9.1f}{}\n", "dd", mb * 1.048576, "-", "-", dd_s,
               mb * 1.048576 / dd_s, rc == 0 ? "" : "  (dd failed)");
    fmt::print("# write s: commit of one file (HDF5 write, read-back check, fsync, rename); dd: bs=1M conv=fsync of "
               "the same size. stall: time save_checkpoint holds the training thread; overhead: extra wall time per "
               "checkpoint against the same steps without checkpoints\n");
  }
  return 0;
}

// ---------------------------------------------------------------- bench sample
struct SampleOptions {
  Common common;
  int64_t batch = 16, max_steps = 0;
  std::string methods, precision = "fp32", json;
};

// Thrown from the progress callback once --max-steps steps are timed.
struct EnoughSteps {};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s + ",") {
    if (ch == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (ch != ' ') {
      cur += ch;
    }
  }
  return out;
}

int bench_sample(const SampleOptions& o, dist::Communicator& comm) {
  SCORCH_CHECK(o.batch > 0 && o.max_steps >= 0, "bench sample: --batch must be positive, --max-steps >= 0");
  Config cfg = load_config(o.common.config, o.common.sets);
  const auto device = dist::choose_device(cfg.dist.device, comm);
  if (device.is_cuda()) compat::set_tf32(o.precision == "tf32");
  RandomScoreModel m(cfg, device);
  int64_t calls = 0;
  models::ScoreFn counted = [&](const torch::Tensor& x, const torch::Tensor& t) {
    ++calls;
    return m.score(x, t);
  };
  const auto methods = o.methods.empty() ? std::vector<std::string>{cfg.sampling.method} : split_list(o.methods);
  const auto shape = with_batch(o.batch, cfg.item_shape());
  if (comm.rank() == 0) {
    fmt::print("# scorch bench sample: {} ({}, {} parameters, random weights), batch {}, {} on {}\n",
               o.common.config.empty() ? "defaults" : o.common.config, cfg.model.name, models::count_parameters(*m.net),
               o.batch, o.precision, dist::describe_device(device));
    fmt::print("# images/s of the whole sampler; with --max-steps K a longer schedule is timed over its first K steps "
               "(median step after the first) and scaled to all its steps\n");
    fmt::print("{:<34} {:>7} {:>7} {:>10} {:>10} {:>11} {:>9}\n", "sampler", "steps", "timed", "NFE/item", "s/batch",
               "images/s", "ms/NFE");
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& method : methods) {
    Config c = cfg;
    c.sampling.method = method;
    std::vector<clock_type::time_point> stamps;
    int64_t total = 0;
    sampling::Progress progress = [&](int64_t done, int64_t of) {
      if (device.is_cuda()) torch::cuda::synchronize();
      stamps.push_back(clock_type::now());
      total = of;
      if (o.max_steps > 0 && done >= o.max_steps && done < of) throw EnoughSteps{};
    };
    torch::NoGradGuard no_grad;
    sampling::Noise noise(make_generator(device, static_cast<uint64_t>(cfg.eval.seed)));
    calls = 0;
    comm.barrier();
    const auto t0 = clock_type::now();
    bool whole = true;
    int64_t nfe = 0;
    try {
      nfe = sampling::sample(c, *m.sde, counted, shape, noise, progress).nfe;
    } catch (const EnoughSteps&) {
      whole = false;
    }
    if (device.is_cuda()) torch::cuda::synchronize();
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    const int64_t timed = static_cast<int64_t>(stamps.size());
    if (!whole) {
      std::vector<double> steps;
      for (size_t i = 1; i < stamps.size(); ++i) steps.push_back(std::chrono::duration<double>(stamps[i] - stamps[i - 1]).count());
      secs = median(steps) * static_cast<double>(total);
      nfe = calls * total / std::max<int64_t>(timed, 1);
    }
    secs = slowest(comm, secs);
    const std::string name = sampling::short_name(c);
    const double ips = static_cast<double>(o.batch) / secs;
    if (comm.rank() == 0) {
      fmt::print("{:<34} {:>7} {:>7} {:>10} {:>10.2f} {:>11.2f} {:>9.2f}\n", name, total > 0 ? fmt::format("{}", total) : "adaptive",
                 whole ? "all" : fmt::format("{}", timed), nfe, secs, ips, nfe > 0 ? secs / static_cast<double>(nfe) * 1e3 : 0.0);
    }
    rows.push_back({{"sampler", name}, {"method", method}, {"steps", total}, {"timed_steps", whole ? total : timed},
                    {"extrapolated", !whole}, {"nfe_per_item", nfe}, {"seconds_per_batch", secs}, {"images_per_s", ips}});
  }
  write_figures(o.json,
                {{"bench", "sample"}, {"config", o.common.config}, {"model", cfg.model.name},
                 {"parameters", models::count_parameters(*m.net)}, {"batch", o.batch}, {"precision", o.precision},
                 {"device", dist::describe_device(device)}, {"samplers", rows},
                 {"peak_gpu_mib", compat::cuda_peak_allocated(device) / 1048576.0}},
                comm);
  return 0;
}

// ---------------------------------------------------------------- bench eval
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

Command bench_command() {
  auto net = std::make_shared<NetOptions>();
  auto ar = std::make_shared<AllreduceOptions>();
  auto tr = std::make_shared<TrainOptions>();
  auto ck = std::make_shared<CheckpointOptions>();
  auto da = std::make_shared<DataOptions>();
  auto sa = std::make_shared<SampleOptions>();
  auto ev = std::make_shared<EvalOptions>();
  auto apps = std::make_shared<std::array<CLI::App*, 7>>();
  Command c;
  c.name = "bench";
  c.help = "benchmarks: net (forward+backward of a network), allreduce (collectives), train (whole training steps), "
             "checkpoint (write throughput and training stall), data (the loader per data.source), sample "
             "(samplers), eval (bits/dim and FID-statistics throughput)";
  c.declare = [=](CLI::App& app) {
    app.require_subcommand(1);
    auto* n = app.add_subcommand("net", "forward+backward time per image and peak memory of a job's network (DSM loss)");
    add_common(*n, net->common, false);
    n->add_option("--batch", net->batch, "images per step")->capture_default_str();
    n->add_option("--steps", net->steps, "timed steps")->capture_default_str();
    n->add_option("--warmup", net->warmup, "untimed steps first")->capture_default_str();
    n->add_option("--precision", net->precision, "fp32, tf32 (fp32 with TF32 tensor cores, CUDA), or bf16 (autocast)")
        ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))
        ->capture_default_str();
    n->add_flag("--channels-last", net->channels_last, "channels-last (NHWC) weights and images");
    n->add_option("--peak-tflops", net->peak_tflops,
                  "the device's dense bf16 peak for model FLOPs utilisation (default: 790 on H100/H200, else none)");
    n->add_option("--json", net->json, "also write the figures to this JSON file");
    n->footer("The device is dist.device (--set dist.device=cuda). Model FLOPs are counted once from the layer "
              "shapes (convolutions and matrix products, 2 per multiply-add); MFU = 3 x forward FLOPs x images/s / "
              "peak.");
    auto* a = app.add_subcommand("allreduce", "all-reduce time and bandwidth per size and backend (like nccl-tests)");
    a->add_option("--min-bytes", ar->min_bytes, "smallest message (suffix K, M, G)")->capture_default_str();
    a->add_option("--max-bytes", ar->max_bytes, "largest message; sizes double from the smallest")
        ->capture_default_str();
    a->add_option("--iters", ar->iters, "timed all-reduces per size")->capture_default_str();
    a->add_option("--warmup", ar->warmup, "untimed all-reduces per size first")->capture_default_str();
    a->add_option("--backend", ar->backend, "all (MPI, and NCCL when built with it and on GPUs) | mpi | nccl")
        ->check(CLI::IsMember({"all", "mpi", "nccl"}))
        ->capture_default_str();
    a->add_option("--device", ar->device, "where the buffers live: auto | cpu | cuda")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
        ->capture_default_str();
    a->footer("Exit status 1 if any reduced value differs from its exact expectation on any rank.");
    auto* t = app.add_subcommand("train", "images/s and step-time breakdown of training, overlap on and off");
    add_common(*t, tr->common, false);
    t->add_option("--steps", tr->steps, "timed steps (per pass)")->capture_default_str();
    t->add_option("--warmup", tr->warmup, "untimed steps first")->capture_default_str();
    t->add_option("--synthetic", tr->synthetic,
                  "use N random images of the job's shape instead of data.path (default when data.path is empty)")
        ->capture_default_str();
    t->add_option("--peak-tflops", tr->peak_tflops, "the device's dense bf16 peak for MFU (default: 790 on H100/H200)");
    t->add_option("--json", tr->json, "also write the figures to this JSON file");
    t->footer("Writes nothing but a temporary synthetic dataset; use --set for dist.*, training.precision, "
              "training.channels_last, training.grad_accum.");
    auto* k = app.add_subcommand("checkpoint", "checkpoint write throughput (against dd) and training stall, sync vs async");
    add_common(*k, ck->common, false);
    k->add_option("--steps", ck->steps, "training steps between checkpoints")->capture_default_str();
    k->add_option("--checkpoints", ck->checkpoints, "checkpoints per mode")->capture_default_str();
    k->add_option("--synthetic", ck->synthetic, "use N random items of the job's shape instead of data.path")
        ->capture_default_str();
    k->footer("Writes into --workdir DIR/scorch_bench_checkpoint (removed afterwards): put DIR on the disk to measure.");
    auto* dd = app.add_subcommand("data", "loader images/s per rank and memory per rank and node for each data.source");
    add_common(*dd, da->common, false);
    dd->add_option("--steps", da->steps, "timed batches per source")->capture_default_str();
    std::vector<std::string> choices{"all"};
    for (const auto& k : names::data_sources())
      if (k != "auto") choices.push_back(k);
    dd->add_option("--source", da->source, names::joined(choices))
        ->check(CLI::IsMember(choices))
        ->capture_default_str();
    dd->add_option("--synthetic", da->synthetic,
                   "use N random images of the job's shape (e.g. --set data.image_size=256) instead of data.path")
        ->capture_default_str();
    dd->footer("Each rank reads its share of training.batch_size per step through the prefetch thread, as training "
               "does on a CPU; run it twice to measure from a warm page cache.");
    auto* sm = app.add_subcommand("sample", "images/s, NFE and time per score evaluation of samplers on a job's network");
    add_common(*sm, sa->common, false);
    sm->add_option("--batch", sa->batch, "images per batch")->capture_default_str();
    sm->add_option("--method", sa->methods, "comma-separated sampling.method values (default: the job's)");
    sm->add_option("--max-steps", sa->max_steps,
                   "time a longer schedule over its first K steps and scale to all its steps (0: run all)")
        ->capture_default_str();
    sm->add_option("--precision", sa->precision, "fp32, or tf32 (TF32 tensor cores, CUDA)")
        ->check(CLI::IsMember({"fp32", "tf32"}))
        ->capture_default_str();
    sm->add_option("--json", sa->json, "also write the figures to this JSON file");
    sm->footer("The network has random weights (no checkpoint needed): step counts and times are those of a trained "
               "network, but an adaptive solver's (ode) NFE is not. Set sampler keys with --set sampling.*, "
               "e.g. --set model.num_scales=1000 --set sampling.steps=20.");
    auto* e = app.add_subcommand("eval", "bits/dim and FID-statistics throughput on random images of a job's shape");
    add_common(*e, ev->common, false);
    e->add_option("--bpd-images", ev->bpd_images, "images in the bits/dim batch (0: skip)")->capture_default_str();
    e->add_option("--fid-images", ev->fid_images, "images through the feature network (0: skip)")->capture_default_str();
    e->add_option("--batch", ev->batch, "feature-extraction batch")->capture_default_str();
    e->add_option("--feature-net", ev->feature_net,
                  "TorchScript feature network (default: a small random one written to a temporary folder)");
    e->add_option("--json", ev->json, "also write the figures to this JSON file");
    e->footer("bits/dim through the probability-flow ODE (eval.rtol, eval.atol) with a random network; features "
              "through the farm into a temporary cache, removed afterwards.");
    *apps = {n, a, t, k, dd, sm, e};
  };
  c.run = [=](dist::Communicator& comm) {
    if (*(*apps)[0]) return bench_net(*net, comm);
    if (*(*apps)[1]) return bench_allreduce(*ar, comm);
    if (*(*apps)[3]) return bench_checkpoint(*ck, comm);
    if (*(*apps)[4]) return bench_data(*da, comm);
    if (*(*apps)[5]) return bench_sample(*sa, comm);
    if (*(*apps)[6]) return bench_eval(*ev, comm);
    return bench_train(*tr, comm);
  };
  return c;
}

}  // namespace scorch::cli
