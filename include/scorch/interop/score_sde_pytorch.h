// score_sde_pytorch checkpoints <-> scorch (the room above `models` that knows both the
// reference's key names and scorch's networks; `io` knows no models). Import of `torch.save`
// zip files holding {model, ema, optimizer, step} into scorch's TrainState, mapping every
// tensor by name and refusing missing, extra or mis-shaped ones, and export back. Read and
// written with io/torch_pickle.h (LibTorch 1.13's unpickler lacks opcodes these files use),
// on the CPU.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "scorch/io/checkpoint.h"
#include "scorch/models/model.h"

namespace scorch::interop {

using io::TensorMap;
using io::TrainState;

// The reference checkpoint as stored: names without the DataParallel `module.` prefix.
struct ReferenceCheckpoint {
  TensorMap model;                          // state_dict: parameters and buffers
  std::vector<torch::Tensor> ema_shadow;    // EMA of the parameters that require grad, in order
  double ema_decay = 0;
  int64_t ema_num_updates = 0;
  std::vector<int64_t> optim_param_ids;     // param_groups[*].params, in order (= model.parameters())
  std::map<int64_t, torch::Tensor> exp_avg, exp_avg_sq;  // optimizer state by param id
  int64_t optim_steps = 0;                  // Adam's step counter (int or tensor in the file)
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  int64_t step = 0;
  // The resolved TOML configuration under 'scorch_config', in files scorch exported (a key
  // score_sde_pytorch's restore_checkpoint does not read); "" in the reference's own files.
  std::string scorch_config;
};

// Reads `path` (zip format of torch >= 1.6; tensors saved from a GPU are loaded to the CPU).
// A legacy (pre-1.6) file or a missing key is an error naming the file and the key.
ReferenceCheckpoint read_score_sde_pytorch(const std::string& path);

// Maps `ref` onto `net` (an NCSN++ built from `cfg`): every parameter and buffer must be
// present with its shape, no key may be left over, the EMA list must match the trainable
// parameters. Returns a TrainState that scorch's train (resume), sample and eval accept.
TrainState convert_reference(const ReferenceCheckpoint& ref, models::ScoreNet& net, const Config& cfg,
                             const std::string& source);

// The inverse of import: score_sde_pytorch's checkpoint of `st` for `net` (built from
// `cfg`): {model: {"module.<name>": tensor, "module.sigmas" for NCSN++}, ema: {decay,
// num_updates, shadow_params}, optimizer: a PyTorch Adam state_dict, step, scorch_config:
// the checkpoint's TOML, so that importing it back under other network keys is refused}. Tensors are
// given back bitwise (dtypes included); an imported file's sigmas come back as they were.
c10::IValue to_score_sde_pytorch(const TrainState& st, models::ScoreNet& net, const Config& cfg);
// A plain state_dict of the network (no `module.` prefix), with the EMA or the raw weights.
c10::IValue to_state_dict(const TrainState& st, models::ScoreNet& net, const Config& cfg, bool ema);
}  // namespace scorch::interop
