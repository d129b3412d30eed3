// Data-parallel training on CPUs or GPUs. Every rank holds the full model (rank 0's
// initial weights are broadcast); step s takes one global batch (a slice of the epoch's
// permutation) whose per-row randomness is keyed by (seed, s, row) (train/batches.h); each
// rank computes its rows, in `training.grad_accum` micro-batches, and the gradient buckets
// are averaged while backward runs (dist/reducer.h). So k steps on W ranks equal k steps on
// 1 rank (up to float summation order), and a resumed run continues exactly where it
// stopped. The loss and the stop flag travel in small separate all-reduces.
#pragma once
#include <functional>
#include <torch/torch.h>

#include <memory>
#include <string>

#include "scorch/core/config.h"
#include "scorch/data/source.h"
#include "scorch/dist/communicator.h"
#include "scorch/dist/reducer.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/tensorboard.h"
#include "scorch/models/model.h"
#include "scorch/optim/adam.h"
#include "scorch/optim/power_ema.h"
#include "scorch/losses/loss.h"
#include "scorch/sde/sde.h"
#include "scorch/train/batches.h"
#include "scorch/train/checkpoint_writer.h"

namespace scorch::train {

using models::NamedTensors;

// Seconds spent in each phase of the last step (filled when profiling is on; on a GPU the
// device is synchronised at every phase boundary, which costs a little speed).
struct StepTimes {
  double data = 0;      // host batch (wait for the prefetcher) and copy to the device
  double forward = 0;   // network and loss, every micro-batch
  double backward = 0;  // backward passes (with overlap, communication runs inside them)
  double comm = 0;      // waiting for gradient all-reduces after the last backward (exposed)
  double optimizer = 0; // clipping, Adam and EMA
  int64_t buckets_in_backward = 0;  // buckets launched by hooks during backward
  double total = 0;     // the whole step, wall clock
};

// Where a run resumes: rank 0 finds the newest checkpoint of `workdir` that verifies
// completely (io::newest_loadable_checkpoint: corrupt newer ones are reported and renamed
// aside) and every rank learns its path ("" when the workdir has none). Rank 0 keeps the
// state it verified, so that it is not read twice. Throws on every rank if every checkpoint
// was corrupt. Collective; rank 0 should hold the workdir lock.
struct ResumePoint {
  std::string path;
  io::TrainState state;  // rank 0: the verified checkpoint; elsewhere empty
  // Training from here starts a new branch of the history (io/checkpoint.h's lineage): the
  // checkpoint is not the newest of this workdir's own history (--discard-newer moved newer
  // ones aside) or comes from another file (--ckpt of another run).
  bool new_branch = false;
};
ResumePoint find_resume_point(dist::Communicator& comm, const std::string& workdir);

// The columns of <workdir>/train_log.csv, in order; TensorBoard tags are "train/<column>".
//   step, loss (mean over ranks and the steps since the last row), lr, images_per_s,
//   unix_time, elapsed_s (since this process started training), images_seen (step x global
//   batch), grad_norm (global, before clipping, of the row's step), data_wait_ms and
//   step_ms (rank 0's mean per step since the last row), comm_ms (exposed gradient
//   communication per step), peak_mem_mb (peak RSS on CPU, CUDA max allocated on GPU),
//   nonfinite_skipped (steps skipped for non-finite gradients in this process).
const std::vector<std::string>& train_log_columns();

class Trainer {
 public:
  // Builds the model on `device` (rank 0's weights broadcast over `comm`), the optimiser,
  // the EMA and the gradient reducer, and loads cfg.data.path. `comm` is the control plane
  // (MPI); gradients go over MPI or NCCL as dist.backend says. Collective.
  Trainer(const Config& cfg, dist::Communicator& comm, std::string workdir, torch::Device device = torch::kCPU);
  ~Trainer();

  // Resumes from the newest checkpoint in the workdir that verifies completely
  // (find_resume_point). Returns its path, or "" if the workdir has none. Collective.
  std::string resume_latest();
  // Resumes from `path` (verified completely before anything is applied). Collective.
  std::string resume_from(const std::string& path);
  // Resumes from `p`: its state where this rank already holds it, else read from p.path.
  // Returns p.path ("" does nothing). Collective.
  std::string resume(ResumePoint p);
  // Trains until `until_step` (cfg.training.n_iters if < 0), logging, checkpointing every
  // snapshot_freq steps (in the background) and at the end. Returns false if stopped early
  // by a stop signal (after the checkpoint of the stop step is committed). A step whose
  // gradients are not finite is not applied (training.on_nonfinite, max_nonfinite).
  bool run(int64_t until_step = -1);
  // One optimiser step on the current global batch. Returns this rank's loss (a scalar on
  // the device; reading it synchronises).
  torch::Tensor train_step();
  // Collective: gathers RNG states; rank 0 copies the state to host memory and hands it to
  // the checkpoint writer; with `wait`, returns once the file is committed. Returns its path.
  std::string save_checkpoint(bool wait = true);
  // training.snapshot_sampling: the EMA weights draw training.snapshot_samples with fixed
  // noise (split over the ranks), rank 0 writes <workdir>/samples/snapshot_<step>.png and a
  // TensorBoard image. Training state (weights, RNGs) is left exactly as it was. Collective.
  void snapshot_sampling();
  // Waits for the checkpoint write in flight (rank 0); re-throws its failure.
  void wait_for_checkpoints();
  CheckpointStats checkpoint_stats() const;

  // The host batch of `step` for this rank (a pure function of seed, step and the rank's rows).
  HostBatch make_batch(int64_t step) const { return batches_->make(step); }

  int64_t step() const { return step_; }
  const torch::Device& device() const { return device_; }
  models::ScoreNet& model() { return *model_; }
  const NamedTensors& trainable() const { return trainable_; }
  optim::EMA& ema() { return *ema_; }
  // ema.sigma_rels' power-function profiles, in that order (empty when none is kept).
  std::vector<optim::PowerEMA>& power_emas() { return power_emas_; }
  dist::Reducer& reducer() { return *reducer_; }
  dist::Communicator& gradient_communicator() { return *grad_comm_; }
  io::TrainState state() const;
  void load_state(const io::TrainState& st);
  void set_profiling(bool on) { profiling_ = on; }
  // Called on rank 0 after each checkpoint of run() is handed to the writer (the step
  // reached): cli/train.cpp keeps <workdir>/status.json current with it.
  void set_checkpoint_listener(std::function<void(int64_t step)> f) { on_checkpoint_ = std::move(f); }
  const StepTimes& last_times() const { return times_; }

 private:
  struct DeviceBatch {
    torch::Tensor x0, t, z, levels, labels, projections;
  };
  DeviceBatch to_device(const HostBatch& hb, int64_t lo, int64_t hi) const;
  torch::Tensor loss_of(const DeviceBatch& d);
  HostBatch next_batch();
  void sync_for_timing() const;
  void on_nonfinite(double grad_norm, double loss);
  // Rank 0, when this step crossed a multiple of ema.snapshot_kimg thousand images: the
  // profiles (and the raw weights) to <workdir>/ema/snapshot_<step>.h5, then pruning.
  void maybe_snapshot_ema();

  Config cfg_;
  dist::Communicator& comm_;
  std::string workdir_;
  torch::Device device_;
  std::shared_ptr<dist::Communicator> grad_comm_;
  std::unique_ptr<sde::SDE> sde_;
  std::unique_ptr<losses::Loss> loss_;
  models::ScoreNetPtr model_;
  NamedTensors trainable_;
  std::unique_ptr<optim::Adam> adam_;
  std::unique_ptr<optim::EMA> ema_;
  std::vector<optim::PowerEMA> power_emas_;
  std::unique_ptr<dist::Reducer> reducer_;
  std::unique_ptr<data::Source> data_;
  std::unique_ptr<BatchMaker> batches_;
  std::unique_ptr<Prefetcher> prefetch_;
  std::unique_ptr<io::EventWriter> events_;  // rank 0: <workdir>/tensorboard
  std::unique_ptr<CheckpointWriter> writer_;  // rank 0 only
  int64_t nonfinite_in_a_row_ = 0, nonfinite_total_ = 0;
  double last_grad_norm_ = 0;  // global gradient norm of the last step, before clipping
  int64_t step_ = 0;
  // The history this state belongs to (io/checkpoint.h): one new branch from step 0, or the
  // resumed checkpoint's, with a branch added where ResumePoint::new_branch says so.
  std::string lineage_;
  std::function<void(int64_t)> on_checkpoint_;
  bool stop_agreed_ = false;  // some rank was signalled (from the all-reduced flag)
  bool profiling_ = false;
  StepTimes times_;
};

}  // namespace scorch::train
