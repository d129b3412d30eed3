// The data-parallel trainer: construction (model, SDE, loss, optimizer, EMA, reducer,
// batches on the chosen device) and one training step. Randomness: the data order is a
// function of (seed, epoch) and each row's noise of (seed, step, row) (train/batches.h);
// dropout uses each rank's default generator of its device (seeded per rank, saved per
// rank). Nothing depends on the number of ranks except dropout. Checkpoint state and resume
// are in train/trainer_state.cpp, the loop with its logs and snapshot grids in
// train/trainer_run.cpp.
#include "scorch/train/trainer.h"

#include <chrono>
#include <cmath>

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/core/stop.h"
#include "scorch/core/memory.h"
#include "scorch/core/torch_compat.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/backend.h"
#include "scorch/dist/sharding.h"

namespace scorch::train {

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

Trainer::Trainer(const Config& cfg, dist::Communicator& comm, std::string workdir, torch::Device device)
    : cfg_(cfg), comm_(comm), workdir_(std::move(workdir)), device_(device), lineage_(io::lineage_with_branch("", 0)) {
  validate(cfg_);
  comm_.set_timeout(cfg_.dist.timeout_s);
  const auto share = dist::batch_share(cfg_.training.batch_size, comm_.rank(), comm_.size(), cfg_.training.grad_accum);
  SCORCH_CHECK(!cfg_.data.path.empty(), "data.path is not set: point it at a training HDF5 file (scorch prepare ...)");
  SCORCH_CHECK(cfg_.training.precision == "fp32" || cfg_.training.precision == "bf16",
               "training.precision = \"{}\" is not one of: fp32, bf16", cfg_.training.precision);
  // The file's claimed shape is checked against the config, memory and storage before
  // anything is read (data/dataset.h); then it is opened as data.source says (data/source.h).
  const auto info = data::inspect(cfg_.data.path);
  data::check_matches(info, cfg_);
  data_ = data::open_source(info, data::source_options(cfg_), &comm_);
  if (comm_.rank() == 0) {
    spdlog::info("data: {}, {} rows, source {}", data_->path(), data_->size(), data_->describe());
  }

  sde_ = sde::make_sde(cfg_);
  sde_->to(device_);
  loss_ = losses::make_loss(cfg_, *sde_);
  SCORCH_CHECK(cfg_.model.num_classes == 0 || data_->labels().defined(),
               "{}: model.num_classes = {} trains a class-conditional network, but the file has no /labels",
               data_->path(), cfg_.model.num_classes);
  batches_ = std::make_unique<BatchMaker>(cfg_, *data_, share, /*pinned=*/device_.is_cuda(), sde_->T(), sde_->N(),
                                          loss_->needs_projections(), /*finish_on_host=*/!device_.is_cuda());
  torch::manual_seed(cfg_.seed);  // identical on every rank; rank 0's weights win anyway
  try {
    model_ = models::make_model(cfg_);
  } catch (const c10::Error& e) {
    SCORCH_THROW("cannot build model.name = \"{}\" with model.nf = {}, model.ch_mult = [{}], model.num_res_blocks = {} "
                 "(too large for this machine?): {}",
                 cfg_.model.name, cfg_.model.nf, fmt::join(cfg_.model.ch_mult, ", "), cfg_.model.num_res_blocks,
                 e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    SCORCH_THROW("cannot build model.name = \"{}\" with model.nf = {}, model.ch_mult = [{}]: out of memory",
                 cfg_.model.name, cfg_.model.nf, fmt::join(cfg_.model.ch_mult, ", "));
  }
  std::vector<torch::Tensor> all;
  for (auto& p : model_->parameters()) all.push_back(p);
  for (auto& b : model_->buffers()) all.push_back(b);
  dist::broadcast_tensors(comm_, all);
  model_->to(device_);
  if (cfg_.training.channels_last) models::to_channels_last(*model_);
  if (device_.is_cuda()) compat::set_tf32(cfg_.training.tf32);
  for (auto& [name, p] : models::named(model_->named_parameters()))
    if (p.requires_grad()) trainable_.emplace_back(name, p);
  adam_ = std::make_unique<optim::Adam>(trainable_, cfg_.optim);
  ema_ = std::make_unique<optim::EMA>(trainable_, cfg_.model.ema_rate);
  for (double s : cfg_.ema.sigma_rels) power_emas_.emplace_back(trainable_, s);
  grad_comm_ = dist::make_data_communicator(cfg_.dist.backend, device_, comm_, cfg_.dist.timeout_s);
  reducer_ = std::make_unique<dist::Reducer>(
      trainable_, *grad_comm_, dist::ReducerOptions{cfg_.dist.bucket_mb, cfg_.dist.first_bucket_mb, cfg_.dist.overlap});
  if (comm_.rank() == 0) {
    writer_ = std::make_unique<CheckpointWriter>(workdir_, cfg_.checkpoint.keep, cfg_.training.snapshot_keep_freq,
                                                 cfg_.checkpoint.async);
  }
  // Dropout draws from each rank's default generator: distinct per rank, saved per rank.
  torch::manual_seed(derive_seed(static_cast<uint64_t>(cfg_.seed), Stream::kDropout, {static_cast<uint64_t>(comm_.rank())}));
}

Trainer::~Trainer() = default;

void Trainer::sync_for_timing() const {
  if (profiling_ && device_.is_cuda()) torch::cuda::synchronize(device_.index());
}

HostBatch Trainer::next_batch() {
  if (prefetch_ && prefetch_->next_step() == step_) return prefetch_->take(step_);
  return batches_->make(step_);
}

Trainer::DeviceBatch Trainer::to_device(const HostBatch& hb, int64_t lo, int64_t hi) const {
  const bool async = device_.is_cuda();  // from pinned memory
  auto move = [&](const torch::Tensor& h) { return h.slice(0, lo, hi).to(device_, /*non_blocking=*/async); };
  DeviceBatch d;
  if (hb.x0.defined()) {
    d.x0 = move(hb.x0);  // made by the producer thread (CPU device)
  } else if (hb.images.defined()) {
    // Dequantisation, flips and scaling on the device, from the uint8 rows.
    auto x01 = data::images_to_unit(move(hb.images), hb.deq.defined() ? move(hb.deq) : torch::Tensor());
    if (cfg_.data.random_flip) x01 = torch::where(move(hb.flip).reshape({-1, 1, 1, 1}), x01.flip({3}), x01);
    d.x0 = data::scale(x01, cfg_.data.centered);
  } else {
    d.x0 = move(hb.points);
  }
  d.t = move(hb.t);
  d.z = move(hb.z);
  if (hb.levels.defined()) d.levels = move(hb.levels);
  if (hb.labels.defined()) d.labels = move(hb.labels);
  if (hb.projections.defined()) d.projections = move(hb.projections);
  const auto layout = cfg_.training.channels_last && d.x0.dim() == 4 ? torch::MemoryFormat::ChannelsLast
                                                                      : torch::MemoryFormat::Contiguous;
  d.x0 = d.x0.contiguous(layout);
  d.z = d.z.contiguous(layout);
  if (d.projections.defined()) d.projections = d.projections.contiguous(layout);
  return d;
}

torch::Tensor Trainer::loss_of(const DeviceBatch& d) {
  compat::AutocastGuard autocast(device_, cfg_.training.precision == "bf16");
  return loss_->per_item(*model_, {d.x0, d.t, d.z, d.levels, d.labels, d.projections}).mean();
}

torch::Tensor Trainer::train_step() {
  times_ = StepTimes{};
  comm_.set_activity(fmt::format("training step {}", step_ + 1));
  const auto t_step = clock_type::now();
  auto t0 = t_step;
  HostBatch hb = next_batch();
  times_.data += seconds_since(t0);
  // The stop flag rides on the control plane, concurrently with the step: every rank acts
  // on the reduced flag, never on its own signal, so all ranks stop after the same step.
  auto stop_flag = torch::tensor({stop_requested() ? 1 : 0}, torch::kInt32);
  auto stop_work = comm_.iallreduce_sum(stop_flag);

  model_->train();
  reducer_->zero_grad();
  const int64_t k = cfg_.training.grad_accum, micro = hb.size() / k;
  torch::Tensor loss_sum;
  for (int64_t m = 0; m < k; ++m) {
    t0 = clock_type::now();
    auto d = to_device(hb, m * micro, (m + 1) * micro);
    sync_for_timing();
    times_.data += seconds_since(t0);
    t0 = clock_type::now();
    auto loss = loss_of(d);
    sync_for_timing();
    times_.forward += seconds_since(t0);
    t0 = clock_type::now();
    reducer_->set_sync(m == k - 1);  // only the last micro-batch launches all-reduces
    (k == 1 ? loss : loss / static_cast<double>(k)).backward();
    sync_for_timing();
    times_.backward += seconds_since(t0);
    loss_sum = loss_sum.defined() ? loss_sum + loss.detach() : loss.detach();
  }
  t0 = clock_type::now();
  reducer_->finish();
  sync_for_timing();
  times_.comm = seconds_since(t0);
  times_.buckets_in_backward = reducer_->launched_in_backward();

  t0 = clock_type::now();
  // The reduced gradients are the same on every rank, so every rank takes the same branch.
  auto norm = adam_->grad_norm();
  const double gnorm = norm.item<double>();
  last_grad_norm_ = gnorm;
  if (std::isfinite(gnorm)) {
    adam_->step(step_, norm);
    ++step_;
    ema_->update(trainable_);
    for (auto& p : power_emas_) p.update(trainable_);
    nonfinite_in_a_row_ = 0;
  } else {
    ++step_;  // the batch is consumed; the weights, moments and EMA stay as they were
    on_nonfinite(gnorm, (k == 1 ? loss_sum : loss_sum / static_cast<double>(k)).item<double>());
  }
  sync_for_timing();
  times_.optimizer = seconds_since(t0);
  if (writer_) writer_->rethrow_if_failed();

  stop_work->wait();
  stop_agreed_ = stop_flag.item<int>() > 0;
  times_.total = seconds_since(t_step);
  if (comm_.size() > 1 && cfg_.dist.check_every > 0 && step_ % cfg_.dist.check_every == 0) {
    dist::check_replicas(comm_, trainable_, step_);
  }
  return k == 1 ? loss_sum : loss_sum / static_cast<double>(k);
}

void Trainer::on_nonfinite(double grad_norm, double loss) {
  ++nonfinite_in_a_row_;
  ++nonfinite_total_;
  const int64_t step = step_ - 1;
  const std::string what = fmt::format("step {}: the gradients are not finite (global norm {}, this rank's loss {})",
                                       step, grad_norm, loss);
  SCORCH_CHECK(cfg_.training.on_nonfinite != "stop",
               "{}; training.on_nonfinite = \"stop\": stopping without applying it (the newest checkpoint holds "
               "finite weights; lower optim.lr or set optim.grad_clip)", what);
  SCORCH_CHECK(nonfinite_in_a_row_ < cfg_.training.max_nonfinite,
               "{}: {} non-finite steps in a row (training.max_nonfinite = {}): the run has diverged; none of them "
               "was applied and the newest checkpoint holds finite weights (lower optim.lr or set optim.grad_clip)",
               what, nonfinite_in_a_row_, cfg_.training.max_nonfinite);
  spdlog::warn("{}: step skipped ({} in a row, {} in this run; training.max_nonfinite = {})", what,
               nonfinite_in_a_row_, nonfinite_total_, cfg_.training.max_nonfinite);
}

}  // namespace scorch::train
