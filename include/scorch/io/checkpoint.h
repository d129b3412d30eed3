// Training checkpoints in HDF5: every parameter and buffer under its module path, the EMA
// weights, the Adam moments, the step, every rank's RNG state, the data-loader position and
// the resolved config. Written by rank 0 atomically; read completely and verified before
// anything is applied, so a bad file is reported and never half-loaded.
//
// Layout (all readable with h5py):
//   /            attrs: format="scorch-checkpoint", version, step, world_size, epoch, batch_in_epoch
//   /config      the resolved TOML configuration (string)
//   /model/params/<name>, /model/buffers/<name>     e.g. /model/params/down0_res0.conv0.weight
//   /ema/<name>           attrs on /ema: decay, num_updates
//   /optimizer/exp_avg/<name>, /optimizer/exp_avg_sq/<name>   attr on /optimizer: step
//   /rng/default          uint8 [world_size, S]: torch's CPU generator state of each rank
//   /rng/cuda             uint8 [world_size, S]: each rank's CUDA generator (GPU runs; version 2)
// Version 2 added /rng/cuda; version 1 files load unchanged.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace scorch::io {

using TensorMap = std::map<std::string, torch::Tensor>;

struct TrainState {
  int64_t step = 0;
  int64_t world_size = 1;
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;
  std::string config_toml;
  TensorMap params, buffers, ema, exp_avg, exp_avg_sq;
  double ema_decay = 0;
  int64_t ema_updates = 0;
  int64_t adam_steps = 0;
  torch::Tensor rng;       // uint8 [world_size, S]: CPU generators (dropout on the CPU)
  torch::Tensor rng_cuda;  // uint8 [world_size, S']: CUDA generators, or undefined
};

constexpr const char* kCheckpointFormat = "scorch-checkpoint";
constexpr int64_t kCheckpointVersion = 2;       // written
constexpr int64_t kOldestCheckpointVersion = 1;  // still read

// Writes `path` atomically: `path`.tmp, fsync, rename. A failure leaves no partial file.
void save_checkpoint(const std::string& path, const TrainState& st);
// Reads and verifies every tensor (Fletcher-32) into memory; throws naming the file and the
// object on truncation or corruption.
TrainState load_checkpoint(const std::string& path);
// Reads only the attributes and the config (fast: `scorch info`).
TrainState load_checkpoint_header(const std::string& path);

// The network weights a checkpoint holds: the raw parameters, or with `use_ema` the EMA
// of the trainable ones (the non-trainable ones, e.g. a fixed Fourier W, stay raw).
TensorMap weights(const TrainState& st, bool use_ema);

// <workdir>/checkpoints/ckpt_<step, 9 digits>.h5
std::string checkpoint_path(const std::string& workdir, int64_t step);
// The checkpoint with the highest step in <workdir>/checkpoints, or "" if none.
std::string latest_checkpoint(const std::string& workdir);

}  // namespace scorch::io
