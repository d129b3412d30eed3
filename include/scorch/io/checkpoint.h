// Training checkpoints in HDF5: every parameter and buffer under its module path, the EMA
// weights, the Adam moments, the step, every rank's RNG state, the data-loader position and
// the resolved config. Written by rank 0 atomically; read completely and verified before
// anything is applied, so a bad file is reported and never half-loaded.
//
// Layout (all readable with h5py):
//   /            attrs: format="scorch-checkpoint", version, step, world_size, epoch, batch_in_epoch
//   /config      the resolved TOML configuration (string; attr crc32 = its zlib CRC-32, version 3)
//   /model/params/<name>, /model/buffers/<name>     e.g. /model/params/down0_res0.conv0.weight
//   /ema/<name>           attrs on /ema: decay, num_updates
//   /optimizer/exp_avg/<name>, /optimizer/exp_avg_sq/<name>   attr on /optimizer: step
//   /rng/default          uint8 [world_size, S]: torch's CPU generator state of each rank
//   /rng/cuda             uint8 [world_size, S]: each rank's CUDA generator (GPU runs; version 2)
//   /power_ema/<k>/<name> power-function EMA profile k (ema.sigma_rels; attrs sigma_rel, gamma,
//                         num_updates), only in runs that keep profiles
//   attr ema_profile on /ema: set when the EMA was reconstructed post hoc (`scorch ema`): which
//                         profile, from which snapshots; such a file samples and evaluates but
//                         does not resume training
//   attr identity on /:   the checkpoint's content identity (version 4): SHA-256 over the step,
//                         the config and every tensor (name, dtype, shape, bytes), computed
//                         when written and verified on every full read. What is derived from
//                         a checkpoint (sample runs, FID and bits/dim records) records it and
//                         is reused only by the checkpoint of the same identity.
//   attr lineage on /:    the training history that led to it (version 4): "ID@STEP ..." -- each
//                         branch's random id and the step it started from, oldest first. A run
//                         started from scratch is one branch from step 0; training from an
//                         older checkpoint whose newer ones were discarded (or from another
//                         run's file) starts a new branch. EMA snapshots carry it too, so that
//                         `scorch ema` combines only snapshots of one history.
// Version 2 added /rng/cuda, version 3 the CRC-32 of /config (every other dataset carries a
// Fletcher-32 checksum), version 4 identity and lineage; versions 1 to 3 load unchanged (their
// identity is the file's SHA-256, their lineage unrecorded). Files hold no timestamps: the
// same state always gives the same bytes (the lineage's random ids aside).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace scorch::io {

using TensorMap = std::map<std::string, torch::Tensor>;

// One power-function EMA profile (optim/power_ema.h) as stored.
struct PowerEmaState {
  double sigma_rel = 0;
  double gamma = 0;
  int64_t num_updates = 0;
  TensorMap tensors;  // by trainable parameter name
};

struct TrainState {
  int64_t step = 0;
  int64_t world_size = 1;
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;
  std::string config_toml;
  TensorMap params, buffers, ema, exp_avg, exp_avg_sq;
  double ema_decay = 0;
  int64_t ema_updates = 0;
  std::string ema_profile;  // "" (the exponential EMA), or what `scorch ema` reconstructed
  std::vector<PowerEmaState> power_ema;  // ema.sigma_rels' profiles, in that order
  int64_t adam_steps = 0;
  torch::Tensor rng;       // uint8 [world_size, S]: CPU generators (dropout on the CPU)
  torch::Tensor rng_cuda;  // uint8 [world_size, S']: CUDA generators, or undefined
  // Tensors of an imported file that scorch's network does not hold but export gives back
  // bitwise (NCSN++'s `sigmas` buffer), stored under /imported; empty otherwise.
  TensorMap imported;
  std::string source;      // the file it was read from ("" if built in memory)
  std::string lineage;     // "ID@STEP ..." (see above); "" unrecorded
  std::string identity;    // set by load_checkpoint (and load_checkpoint_header where stored)
};

constexpr const char* kCheckpointFormat = "scorch-checkpoint";
constexpr int64_t kCheckpointVersion = 4;       // written
constexpr int64_t kOldestCheckpointVersion = 1;  // still read

// Writes `path` atomically (io/files.h: an exclusive temporary, every HDF5 close checked,
// read back, fsync, rename). Refuses a state holding a non-finite value, naming the tensor.
// A failure leaves `path` and every other checkpoint untouched.
void save_checkpoint(const std::string& path, const TrainState& st);
// The first tensor of the state holding NaN or Inf, as "group/name", or "" if none.
std::string first_nonfinite(const TrainState& st);
// Reads and verifies every tensor (Fletcher-32) and the content identity into memory; throws
// naming the file and the object on truncation or corruption (an identity that does not match
// the content: the file was changed after scorch wrote it).
TrainState load_checkpoint(const std::string& path);
// Reads only the attributes and the config (fast: `scorch info`); `identity` is the stored one
// ("" in a file of version 1 to 3).
TrainState load_checkpoint_header(const std::string& path);

// The content identity of `st` (64 hex digits): SHA-256 over the step, the config and every
// tensor group in a fixed order (2.1 GB/s with SHA-NI on the development machine: `scorch
// bench checkpoint` prints it).
std::string content_identity(const TrainState& st);
// The identity of the checkpoint `path` without reading its tensors: the stored attribute,
// or for a file of version 1 to 3 its SHA-256 (reads the file once).
std::string checkpoint_identity(const std::string& path);

// Lineage (see above). A new history from `step` on: `lineage` + " <new random id>@<step>".
std::string lineage_with_branch(const std::string& lineage, int64_t step);
// The id of the branch that made the state of step `step` ("" when unrecorded): the last
// branch started before `step` (a branch started at S continues from S's state, which its
// parent made).
std::string lineage_branch_at(const std::string& lineage, int64_t step);
// Throws naming `what` unless `lineage` is well formed (ids of hex digits, steps increasing).
void check_lineage(const std::string& lineage, const std::string& what);

// The network weights a checkpoint holds: the raw parameters, or with `use_ema` the EMA
// of the trainable ones (the non-trainable ones, e.g. a fixed Fourier W, stay raw).
TensorMap weights(const TrainState& st, bool use_ema);

// <workdir>/checkpoints/ckpt_<step, 9 digits>.h5
std::string checkpoint_path(const std::string& workdir, int64_t step);
// The checkpoint with the highest step in <workdir>/checkpoints, or "" if none.
std::string latest_checkpoint(const std::string& workdir);
// Every ckpt_<step>.h5 of <workdir>/checkpoints as (step, path), oldest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& workdir);

// Why a checkpoint that loaded and verified still must not be used (`why` empty if it may):
// its file name (ckpt_<step>.h5) disagrees with its stored step (suffix ".misnamed"), or a
// tensor holds NaN/Inf (".nonfinite"); `suffix` is what a resume renames it aside with.
struct CheckpointProblem {
  std::string why, suffix;
  bool empty() const { return why.empty(); }
};
CheckpointProblem checkpoint_problem(const TrainState& st, const std::string& path);

// The newest checkpoint that loads, verifies completely and passes checkpoint_problem, with
// the state it holds (so it is not read again). Each newer one that does not is reported
// (its path and why) and renamed aside (never deleted) to "<name>.corrupt" (unreadable or
// failing a checksum), "<name>.nonfinite" (NaN/Inf) or "<name>.misnamed" (name vs step).
// `path` is "" if none is left. Call on one rank only, holding the workdir lock.
struct Resumable {
  std::string path;
  TrainState state;                    // the checkpoint at `path`, verified

  std::vector<std::string> set_aside;  // the corrupt files, renamed
  std::vector<std::string> reasons;    // why each was set aside
  // "" if `path` is usable or the workdir had no checkpoint at all; otherwise the message
  // for a workdir whose every checkpoint was corrupt (naming them and why).
  std::string failure(const std::string& workdir) const;
};
Resumable newest_loadable_checkpoint(const std::string& workdir);

// Deletes checkpoints beyond the newest `keep` (keep <= 0: keeps all), except those whose
// step is a multiple of `keep_every` (> 0). Returns the paths removed.
std::vector<std::string> prune_checkpoints(const std::string& workdir, int64_t keep, int64_t keep_every);

}  // namespace scorch::io
