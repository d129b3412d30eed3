// The evaluations `scorch sample` and `scorch eval` run, for the sweep (cli/eval_sweep.cpp)
// to run them in turn over a run's checkpoints: the sample sets of a checkpoint, its
// bits/dim, and FID / IS / KID of its samples. Each is collective, resumable through the
// farm, and returns 0, kStoppedExitCode when a signal stopped it, or throws.
#pragma once
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "scorch/cli/common.h"

namespace scorch::cli {

struct FidOptions {
  Common common;
  std::string data, out, ref, run, feature_net;
  // A result whose JSON record already exists is read from it, not computed and logged again
  // (the sweep's reruns after a requeue).
  bool reuse_records = false;
};

// `scorch sample`: the eval.seed_sets sample runs of the checkpoint.
int sample_sets(const Common& opt, dist::Communicator& comm);
// `scorch eval bpd`; `record` (rank 0) receives the JSON record's path.
int eval_bpd(const Common& opt, dist::Communicator& comm, bool reuse_records = false, std::string* record = nullptr);
// `scorch eval fid-stats`: pytorch-fid-compatible statistics of a data set file.
int eval_fid_stats(const FidOptions& opt, dist::Communicator& comm);
// --config, --workdir, --set, --ckpt and --feature-net (its interfaces explained), bound to `o`.
void add_feature_options(CLI::App& app, FidOptions& o);
// `scorch eval fid`; `record` (rank 0) receives the JSON record's path (the seed sets'
// summary when eval.seed_sets > 1).
int eval_fid(const FidOptions& opt, dist::Communicator& comm, std::string* record = nullptr);

struct SweepOptions {
  FidOptions fid;              // --workdir, --ref, --feature-net, --config, --set
  int64_t every = 1;           // every N-th checkpoint, counted back from the newest
  std::string metric = "fid";  // fid | bpd | both
  std::vector<double> sigma_rels;  // --sigma-rel a,b,c: post-hoc EMA profiles at one step instead
  int64_t step = -1;               // their snapshot step (-1: the newest)
};

// `scorch ema` (cli/ema.cpp): the power-function profile `sigma_rel` at snapshot `step` (-1:
// the newest) of `workdir`, reconstructed from its EMA snapshots, written as a checkpoint to
// `out` ("": default_ema_checkpoint). Returns the path. One process (rank 0).
// Refuses a reconstruction whose relative L2 profile residual exceeds `max_residual`, and any
// snapshot of another training history or architecture, naming the file.
constexpr double kEmaMaxResidual = 0.05;
constexpr int64_t kNewestSnapshot = std::numeric_limits<int64_t>::min();  // --step's default
std::string reconstruct_ema(const std::string& workdir, double sigma_rel, int64_t step, const std::string& out,
                            double max_residual = kEmaMaxResidual);
// <workdir>/ema/phema_<step, 9 digits>_sigma<sigma_rel, 4 decimals>.h5
std::string default_ema_checkpoint(const std::string& workdir, int64_t step, double sigma_rel);

// Which of `count` checkpoints (oldest first) a sweep with --every N evaluates: indices
// count-1, count-1-N, ... in increasing order (the newest always among them).
std::vector<size_t> sweep_selection(size_t count, int64_t every);

// `scorch eval sweep` (cli/eval_sweep.cpp).
int eval_sweep(const SweepOptions& opt, dist::Communicator& comm);

}  // namespace scorch::cli
