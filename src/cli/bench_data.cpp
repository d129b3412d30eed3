// `scorch bench data`: the data loader per data.source (memory, node_shared, stream), as
// training consumes it: batches per second through the prefetch thread, the source's gather
// alone, and the memory each source takes per rank and per node (RSS and PSS); then the
// cost of one TensorBoard log line.
#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "scorch/cli/bench.h"
#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/names.h"
#include "scorch/core/random.h"
#include "scorch/data/dataset.h"
#include "scorch/data/source.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/tensorboard.h"
#include "scorch/train/batches.h"
#include "scorch/train/trainer.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

using namespace bench;

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

}  // namespace

Command bench_data_command() {
  return make_command<DataOptions>(
      "data", "loader images/s per rank and memory per rank and node for each data.source",
      [](CLI::App& app, DataOptions& o) {
        add_common(app, o.common, false);
        app.add_option("--steps", o.steps, "timed batches per source")->capture_default_str();
        std::vector<std::string> choices{"all"};
        for (const auto& k : names::data_sources())
          if (k != "auto") choices.push_back(k);
        app.add_option("--source", o.source, names::joined(choices))
            ->check(CLI::IsMember(choices))
            ->capture_default_str();
        app.add_option("--synthetic", o.synthetic,
                       "use N random images of the job's shape (e.g. --set data.image_size=256) instead of data.path")
            ->capture_default_str();
        app.footer("Each rank reads its share of training.batch_size per step through the prefetch thread, as training "
                   "does on a CPU; run it twice to measure from a warm page cache.");
      },
      bench_data);
}

}  // namespace scorch::cli
