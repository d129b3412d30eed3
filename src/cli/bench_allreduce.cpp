// `scorch bench allreduce`: like nccl-tests' all_reduce_perf: sizes from --min-bytes to
// --max-bytes (x2), time, algorithm and bus bandwidth for each backend, beside a plain
// MPI_Allreduce loop. Inputs are crafted so that every reduced value is exactly predictable;
// errors are counted on every rank and all-reduced into the exit status.
#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>

#include "scorch/cli/bench.h"
#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/dist/backend.h"

namespace scorch::cli {

namespace {

using namespace bench;

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

}  // namespace

Command bench_allreduce_command() {
  return make_command<AllreduceOptions>(
      "allreduce", "all-reduce time and bandwidth per size and backend (like nccl-tests)",
      [](CLI::App& app, AllreduceOptions& o) {
        app.add_option("--min-bytes", o.min_bytes, "smallest message (suffix K, M, G)")->capture_default_str();
        app.add_option("--max-bytes", o.max_bytes, "largest message; sizes double from the smallest")
            ->capture_default_str();
        app.add_option("--iters", o.iters, "timed all-reduces per size")->capture_default_str();
        app.add_option("--warmup", o.warmup, "untimed all-reduces per size first")->capture_default_str();
        app.add_option("--backend", o.backend, "all (MPI, and NCCL when built with it and on GPUs) | mpi | nccl")
            ->check(CLI::IsMember({"all", "mpi", "nccl"}))
            ->capture_default_str();
        app.add_option("--device", o.device, "where the buffers live: auto | cpu | cuda")
            ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
            ->capture_default_str();
        app.footer("Exit status 1 if any reduced value differs from its exact expectation on any rank.");
      },
      bench_allreduce);
}

}  // namespace scorch::cli
