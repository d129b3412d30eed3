// Data-parallel training. Every rank holds the full model; rank 0's initial weights are
// broadcast; each step draws one global batch (a seeded permutation per epoch) and one set
// of noise for it (seeded by the step), each rank computes its rows, and gradients are
// averaged with one all-reduce. So k steps on W ranks equal k steps on 1 rank (up to float
// summation order), and a resumed run continues exactly where it stopped.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "scorch/core/config.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/communicator.h"
#include "scorch/io/checkpoint.h"
#include "scorch/models/model.h"
#include "scorch/optim/adam.h"
#include "scorch/sde/sde.h"

namespace scorch::train {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// A deterministic 64-bit seed from a base seed and indices (splitmix64 chain).
uint64_t derive_seed(uint64_t seed, std::initializer_list<uint64_t> parts);

class Trainer {
 public:
  // Builds the model (rank 0's weights broadcast), optimiser and EMA, loads cfg.data.path.
  Trainer(const Config& cfg, dist::Communicator& comm, std::string workdir);

  // Resumes from the newest checkpoint in the workdir, if any. Returns its path or "".
  std::string resume_latest();
  // Trains until `until_step` (cfg.training.n_iters if < 0), logging, checkpointing every
  // snapshot_freq steps and at the end. Returns false if stopped early by SIGTERM/SIGUSR1
  // (after writing a checkpoint).
  bool run(int64_t until_step = -1);
  // One optimiser step on the current global batch. Returns the rank-averaged loss.
  double train_step();
  // Collective: gathers RNG states; rank 0 writes the checkpoint. Returns its path.
  std::string save_checkpoint();

  int64_t step() const { return step_; }
  models::ScoreNet& model() { return *model_; }
  const NamedTensors& trainable() const { return trainable_; }
  optim::EMA& ema() { return *ema_; }
  io::TrainState state() const;
  void load_state(const io::TrainState& st);

 private:
  torch::Tensor epoch_permutation(int64_t epoch);

  Config cfg_;
  dist::Communicator& comm_;
  std::string workdir_;
  std::unique_ptr<sde::SDE> sde_;
  models::ScoreNetPtr model_;
  NamedTensors trainable_;
  std::unique_ptr<optim::Adam> adam_;
  std::unique_ptr<optim::EMA> ema_;
  data::Dataset data_;
  int64_t steps_per_epoch_ = 0;
  int64_t step_ = 0;
  int64_t cached_epoch_ = -1;
  torch::Tensor cached_perm_;
  bool stop_agreed_ = false;  // some rank was signalled (from the all-reduced flag)
};

// Copies a checkpoint's EMA (or raw) weights into `model`, checking names and shapes first.
void load_weights(models::ScoreNet& model, const io::TrainState& st, bool use_ema);

// Installs SIGTERM/SIGUSR1 handlers that ask the training loop to checkpoint and stop.
void install_stop_handlers();
bool stop_requested();

}  // namespace scorch::train
