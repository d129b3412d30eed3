// The subcommands of `scorch`. Each resolves its configuration the same way
// (defaults <- checkpoint's config <- --config job file <- --set overrides), runs on every
// rank of the communicator, and meets the other stages only through files in the workdir.
#pragma once
#include <string>
#include <vector>

#include "scorch/core/config.h"
#include "scorch/dist/communicator.h"

namespace scorch::cli {

struct Common {
  std::string config;                // --config jobs/X.toml
  std::string workdir;               // --workdir DIR
  std::string ckpt;                  // --ckpt FILE (default: newest in workdir)
  std::vector<std::string> sets;     // --set section.key=value
};

// `scorch prepare DATASET`: converts a published dataset to the HDF5 schema.
struct PrepareOptions {
  std::string dataset;     // fashion-mnist | cifar10 | images | mixture
  std::string raw;         // fashion-mnist: IDX folder; cifar10: batches folder or tarball
  std::string dir;         // images: folder of PNG/JPEG files
  int64_t resolution = 0;  // images: output H = W
  std::string out;         // folder (fashion-mnist, cifar10) or file (cifar10 X.h5, images, mixture)
  std::string config;      // mixture: job file of the analytic_gmm
  int64_t count = 10000;   // mixture: number of points
};
int prepare(const PrepareOptions& opt, dist::Communicator& comm);
int train(const Common& opt, dist::Communicator& comm);
int sample(const Common& opt, dist::Communicator& comm);
int eval_bpd(const Common& opt, dist::Communicator& comm);
int info(const Common& opt, bool list_keys, dist::Communicator& comm);
// Data (a dataset file) -> latents through the probability-flow ODE (eps -> T), and back.
int encode(const Common& opt, const std::string& data, const std::string& out, dist::Communicator& comm);
int decode(const Common& opt, const std::string& latents, const std::string& out, dist::Communicator& comm);
// A reference checkpoint (`from`: score-sde-pytorch) for the network of --config -> `out`.
int import_checkpoint(const std::string& from, const std::string& src, const Common& opt, const std::string& out,
                      dist::Communicator& comm);
// Forward+backward speed and peak memory of the job's network on the DSM loss.
struct BenchOptions {
  int64_t batch = 8;
  int64_t steps = 5;
  int64_t warmup = 1;
  std::string device = "cpu";     // cpu | cuda | cuda:N
  std::string precision = "fp32"; // fp32 | bf16 (autocast)
};
int bench(const Common& opt, const BenchOptions& b, dist::Communicator& comm);
// Prints images of a samples or dataset file (/images) as text.
int preview(const std::string& file, int64_t count);

// The checkpoint to use (--ckpt, else newest in --workdir) and the config it resolves to.
// With `need_ckpt`, a missing checkpoint is an error unless the model is analytic_gmm.
struct Resolved {
  Config cfg;
  std::string ckpt;     // "" when none was given or found
  std::string workdir;  // --workdir, or the run directory holding --ckpt
};
Resolved resolve(const Common& opt, bool need_ckpt);

}  // namespace scorch::cli
