// The training loop and its checkpoint state. Randomness: the data order is a function of
// (seed, epoch) and each row's noise of (seed, step, row) (train/batches.h); dropout uses
// each rank's default generator of its device (seeded per rank, saved per rank). Nothing
// depends on the number of ranks except dropout.
#include "scorch/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "scorch/core/error.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/core/stop.h"
#include "scorch/core/memory.h"
#include "scorch/core/torch_compat.h"
#include "scorch/core/version.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/backend.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/ema_snapshots.h"
#include "scorch/io/files.h"
#include "scorch/io/tensorboard.h"
#include "scorch/data/image_grid.h"
#include "scorch/models/score_fn.h"
#include "scorch/sampling/noise.h"
#include "scorch/sampling/sampler.h"
#include "scorch/sde/variants.h"

namespace fs = std::filesystem;

namespace scorch::train {

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Host copies the caller may keep while training goes on. From a GPU: into pinned memory
// (torch's caching host allocator reuses it), queued on the current stream without waiting;
// state() synchronises the device once for all of them.
io::TensorMap to_host_map(const NamedTensors& v) {
  io::TensorMap m;
  for (const auto& [name, t] : v) {
    if (t.is_cuda()) {
      auto h = torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(true));
      h.copy_(t.detach(), /*non_blocking=*/true);
      m[name] = h;
    } else {
      m[name] = t.detach().clone();
    }
  }
  return m;
}

NamedTensors zip(const NamedTensors& names, std::vector<torch::Tensor>& tensors) {
  NamedTensors out;
  for (size_t i = 0; i < names.size(); ++i) out.emplace_back(names[i].first, tensors[i]);
  return out;
}

// Host copies of the power-function EMA profiles (checkpoints and EMA snapshots).
std::vector<io::PowerEmaState> host_power_ema(const NamedTensors& names, const std::vector<optim::PowerEMA>& emas) {
  std::vector<io::PowerEmaState> out;
  for (const auto& p : emas) {
    auto shadow = p.shadow();
    out.push_back({p.sigma_rel(), p.gamma(), p.num_updates(), to_host_map(zip(names, shadow))});
  }
  return out;
}

// The default generator dropout draws from on `device`.
at::Generator dropout_generator(const torch::Device& device) {
  return at::globalContext().defaultGenerator(device.is_cuda() ? device : torch::Device(torch::kCPU));
}

}  // namespace

const std::vector<std::string>& train_log_columns() {
  static const std::vector<std::string> c{"step",        "loss",         "lr",           "images_per_s",
                                          "unix_time",   "elapsed_s",    "images_seen",  "grad_norm",
                                          "data_wait_ms", "step_ms",     "comm_ms",      "peak_mem_mb",
                                          "nonfinite_skipped"};
  return c;
}

Trainer::Trainer(const Config& cfg, dist::Communicator& comm, std::string workdir, torch::Device device)
    : cfg_(cfg), comm_(comm), workdir_(std::move(workdir)), device_(device) {
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

io::TrainState Trainer::state() const {
  io::TrainState st;
  st.step = step_;
  st.world_size = comm_.size();
  st.epoch = step_ / batches_->steps_per_epoch();
  st.batch_in_epoch = step_ % batches_->steps_per_epoch();
  st.config_toml = to_toml(cfg_);
  st.params = to_host_map(models::named(model_->named_parameters()));
  st.buffers = to_host_map(models::named(model_->named_buffers()));
  st.ema = to_host_map(zip(trainable_, ema_->shadow()));
  st.exp_avg = to_host_map(zip(trainable_, adam_->exp_avg()));
  st.exp_avg_sq = to_host_map(zip(trainable_, adam_->exp_avg_sq()));
  st.ema_decay = ema_->decay();
  st.ema_updates = ema_->num_updates();
  st.adam_steps = adam_->num_steps();
  st.power_ema = host_power_ema(trainable_, power_emas_);
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());  // the pinned copies are complete
  return st;
}

void Trainer::load_state(const io::TrainState& st) {
  SCORCH_CHECK(st.ema_profile.empty(), "{} holds a post-hoc EMA ({}) and no optimizer state of its own: it is for "
               "sample, eval and export; resume training from the run's checkpoints/", st.source, st.ema_profile);
  // Everything is checked against the model before the first tensor is copied.
  SCORCH_CHECK(st.power_ema.size() == power_emas_.size(),
               "checkpoint '{}' holds {} power-function EMA profiles but ema.sigma_rels lists {}", st.source,
               st.power_ema.size(), power_emas_.size());
  for (size_t k = 0; k < power_emas_.size(); ++k) {
    SCORCH_CHECK(st.power_ema[k].sigma_rel == power_emas_[k].sigma_rel(),
                 "checkpoint '{}': EMA profile {} has sigma_rel {}, ema.sigma_rels[{}] = {}", st.source, k,
                 st.power_ema[k].sigma_rel, k, power_emas_[k].sigma_rel());
    for (const auto& [name, p] : trainable_) {
      auto it = st.power_ema[k].tensors.find(name);
      SCORCH_CHECK(it != st.power_ema[k].tensors.end() && it->second.sizes() == p.sizes(),
                   "checkpoint '{}': EMA profile {} lacks '{}' or holds another shape", st.source, k, name);
    }
  }
  auto params = models::named(model_->named_parameters());
  auto buffers = models::named(model_->named_buffers());
  for (const auto& [src, what] : {std::pair{&st.ema, "EMA tensor"}, std::pair{&st.exp_avg, "Adam exp_avg"},
                                  std::pair{&st.exp_avg_sq, "Adam exp_avg_sq"}}) {
    for (const auto& [name, p] : trainable_) {
      auto it = src->find(name);
      SCORCH_CHECK(it != src->end(), "checkpoint '{}' lacks {} '{}' of this model (written for another model config?)",
                   st.source, what, name);
      SCORCH_CHECK(it->second.sizes() == p.sizes(),
                   "checkpoint '{}': {} '{}' has shape [{}] but this model's is [{}] (written for another model config?)",
                   st.source, what, name, fmt::join(it->second.sizes(), ", "), fmt::join(p.sizes(), ", "));
    }
  }
  try {
    models::copy_named(st.params, params, "parameter");
    models::copy_named(st.buffers, buffers, "buffer");
  } catch (const std::exception& e) {
    SCORCH_THROW("checkpoint '{}' does not fit this model: {}", st.source, e.what());
  }
  torch::NoGradGuard ng;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    const auto& name = trainable_[i].first;
    ema_->shadow()[i].copy_(st.ema.at(name));
    adam_->exp_avg()[i].copy_(st.exp_avg.at(name));
    adam_->exp_avg_sq()[i].copy_(st.exp_avg_sq.at(name));
  }
  ema_->set_num_updates(st.ema_updates);
  for (size_t k = 0; k < power_emas_.size(); ++k) {
    for (size_t i = 0; i < trainable_.size(); ++i) {
      power_emas_[k].shadow()[i].copy_(st.power_ema[k].tensors.at(trainable_[i].first));
    }
    power_emas_[k].set_num_updates(st.power_ema[k].num_updates);
  }
  adam_->set_num_steps(st.adam_steps);
  step_ = st.step;
  const bool same_world = st.rng.defined() && st.rng.size(0) == comm_.size();
  const bool cuda_state = !device_.is_cuda() || (st.rng_cuda.defined() && st.rng_cuda.size(0) == comm_.size());
  if (same_world && cuda_state) {
    auto cpu = at::detail::getDefaultCPUGenerator();
    cpu.set_state(st.rng[comm_.rank()].clone());
    if (device_.is_cuda()) dropout_generator(device_).set_state(st.rng_cuda[comm_.rank()].clone());
  } else {
    spdlog::warn("checkpoint was written by {} ranks{}, this job has {}{}: dropout RNG streams are re-seeded",
                 st.world_size, st.rng_cuda.defined() ? " on GPUs" : "", comm_.size(),
                 device_.is_cuda() ? " on GPUs" : "");
    torch::manual_seed(derive_seed(static_cast<uint64_t>(cfg_.seed), Stream::kDropoutReseed,
                                   {static_cast<uint64_t>(step_), static_cast<uint64_t>(comm_.rank())}));
  }
}

ResumePoint find_resume_point(dist::Communicator& comm, const std::string& workdir) {
  ResumePoint p;
  std::string msg;  // the path, or "!" and why nothing is usable
  if (comm.rank() == 0) {
    auto r = io::newest_loadable_checkpoint(workdir);
    msg = r.path.empty() && !r.set_aside.empty() ? "!" + r.failure(workdir) : r.path;
    if (!r.path.empty() && !r.set_aside.empty()) {
      spdlog::warn("resuming from {}, the newest checkpoint that verifies ({} newer set aside)", r.path,
                   r.set_aside.size());
    }
    p.state = std::move(r.state);
  }
  msg = dist::broadcast_string(comm, msg, 0);
  SCORCH_CHECK(msg.empty() || msg[0] != '!', "{}", msg.substr(1));
  p.path = msg;
  return p;
}

std::string Trainer::resume_latest() { return resume(find_resume_point(comm_, workdir_)); }

std::string Trainer::resume_from(const std::string& path) { return resume(ResumePoint{path, {}}); }

std::string Trainer::resume(ResumePoint p) {
  if (p.path.empty()) return "";
  load_state(p.state.source == p.path ? p.state : io::load_checkpoint(p.path));
  spdlog::info("resumed from {} at step {}", p.path, step_);
  return p.path;
}

void Trainer::maybe_snapshot_ema() {
  if (power_emas_.empty() || comm_.rank() != 0) return;
  // Every rank holds the same replica: rank 0 alone writes.
  const double per = cfg_.ema.snapshot_kimg * 1000.0;
  const auto B = static_cast<double>(cfg_.training.batch_size);
  const auto crossed = [&](int64_t step) { return static_cast<int64_t>(std::floor(static_cast<double>(step) * B / per)); };
  if (crossed(step_) == crossed(step_ - 1)) return;
  io::EmaSnapshot s;
  s.step = step_;
  s.images = step_ * cfg_.training.batch_size;
  s.config_toml = to_toml(cfg_);
  s.params = to_host_map(models::named(model_->named_parameters()));
  s.buffers = to_host_map(models::named(model_->named_buffers()));
  s.profiles = host_power_ema(trainable_, power_emas_);
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());  // the pinned copies are complete
  const std::string path = io::ema_snapshot_path(workdir_, step_);
  io::save_ema_snapshot(path, s);
  for (const auto& gone : io::prune_ema_snapshots(workdir_, cfg_.ema.snapshot_keep)) {
    spdlog::info("ema.snapshot_keep = {}: removed {}", cfg_.ema.snapshot_keep, gone);
  }
}

std::string Trainer::save_checkpoint(bool wait) {
  auto rng = at::detail::getDefaultCPUGenerator().get_state();
  auto all = comm_.gather_rows(rng.unsqueeze(0), 0);
  torch::Tensor all_cuda;
  if (device_.is_cuda()) all_cuda = comm_.gather_rows(dropout_generator(device_).get_state().unsqueeze(0), 0);
  std::string path = io::checkpoint_path(workdir_, step_);
  if (comm_.rank() == 0) {
    auto st = state();  // host copies: training may go on while they are written
    st.rng = all;
    st.rng_cuda = all_cuda;
    writer_->submit(std::move(st), path);
    if (wait) writer_->wait();
  }
  return path;
}

void Trainer::snapshot_sampling() {
  const auto t0 = clock_type::now();
  const int64_t n = cfg_.training.snapshot_samples, W = comm_.size(), r = comm_.rank();
  const int64_t lo = n * r / W, hi = n * (r + 1) / W;
  // Sample with the EMA weights; the guard puts the trained weights and train mode back
  // bitwise on every way out.
  struct Restore {
    const NamedTensors& params;
    models::ScoreNet& model;
    std::vector<torch::Tensor> saved;
    ~Restore() {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < saved.size(); ++i) params[i].second.copy_(saved[i]);
      model.train();
    }
  } restore{trainable_, *model_, {}};
  torch::Tensor images;
  int64_t nfe = 0;
  {
    torch::NoGradGuard ng;
    for (const auto& [name, p] : trainable_) restore.saved.push_back(p.detach().clone());
    ema_->copy_to(trainable_);
    model_->eval();
    std::vector<int64_t> index;
    for (int64_t i = lo; i < hi; ++i) index.push_back(i);
    // A fixed stream per sample, the same at every snapshot (sampling/noise.h).
    const uint64_t key = derive_seed(static_cast<uint64_t>(cfg_.seed), Stream::kSnapshotSamples, {});
    auto noise = sampling::Noise::per_item(key, index, device_);
    auto score = models::make_score_fn(*model_, *sde_, cfg_.training.continuous);
    const auto item = cfg_.item_shape();
    if (hi > lo) {
      auto shape = item;
      shape.insert(shape.begin(), hi - lo);
      auto res = sampling::sample(cfg_, *sde_, score, shape, noise);
      nfe = res.nfe;
      images = data::unit_to_images(data::unscale(res.x.to(torch::kFloat32), cfg_.data.centered)).cpu();
    } else {
      images = torch::empty({0, item[1], item[2], item[0]}, torch::kUInt8);
    }
  }
  auto all = comm_.gather_rows(images.contiguous(), 0);
  if (comm_.rank() == 0) {
    const std::string png = fmt::format("{}/samples/snapshot_{:09d}.png", workdir_, step_);
    fs::create_directories(workdir_ + "/samples");
    data::write_png_grid(png, all, /*zoom=*/all.size(1) < 64 ? 2 : 1);
    std::ifstream in(png, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    int w = 0, h = 0;  // the PNG's size from its IHDR chunk (big-endian at bytes 16 and 20)
    for (int k = 0; k < 4; ++k) {
      w = (w << 8) | static_cast<unsigned char>(bytes[16 + k]);
      h = (h << 8) | static_cast<unsigned char>(bytes[20 + k]);
    }
    const double now = unix_seconds();
    if (events_) events_->image("samples/snapshot", step_, bytes, h, w, all.size(3), now);
    spdlog::info("snapshot sampling: {} samples ({}, {} NFE) with the EMA weights in {:.1f} s -> {}", n,
                 sampling::short_name(cfg_), nfe, seconds_since(t0), png);
  }
}

void Trainer::wait_for_checkpoints() {
  if (writer_) writer_->wait();
}

CheckpointStats Trainer::checkpoint_stats() const { return writer_ ? writer_->stats() : CheckpointStats{}; }

bool Trainer::run(int64_t until) {
  if (until < 0) until = cfg_.training.n_iters;
  const bool root = comm_.rank() == 0;
  std::ofstream csv;
  if (root) {
    fs::create_directories(workdir_);
    const std::string log = workdir_ + "/train_log.csv";
    // Rows past the step we resume from came from a run that died before its next
    // checkpoint: those steps are trained again, so their old rows go (each step logs once).
    // A log of fewer columns (an older scorch) keeps its rows, padded with empty fields.
    const auto& cols = train_log_columns();
    const std::string header = fmt::format("{}\n", fmt::join(cols, ","));
    std::string kept = header;
    bool rewrite = !fs::exists(log);
    if (fs::is_symlink(log)) {
      spdlog::warn("{} is a symlink: replacing it with a file (never writing through it)", log);
      rewrite = true;
    } else {
      std::ifstream in(log);
      std::string line;
      size_t pad = 0;
      int64_t dropped = 0;
      for (bool first = true; std::getline(in, line); first = false) {
        if (first) {
          if (line + "\n" != header) {
            rewrite = true;
            pad = cols.size() - std::min(cols.size(), static_cast<size_t>(std::count(line.begin(), line.end(), ',') + 1));
          }
          continue;
        }
        if (line.empty()) continue;
        const long long st = std::atoll(line.c_str());
        if (st <= step_) {
          kept += line + std::string(pad, ',') + "\n";
        } else {
          ++dropped;
        }
      }
      if (dropped > 0) {
        spdlog::warn("train_log.csv: dropping {} rows after step {} (those steps are trained again)", dropped, step_);
        rewrite = true;
      }
    }
    if (rewrite) io::write_text_atomically(log, kept);
    csv.open(log, std::ios::app);
  }
  const int64_t start = step_;
  if (step_ >= until) {
    spdlog::info("already at step {} (target {}): nothing to train", step_, until);
    return true;
  }
  if (root) {
    spdlog::info("{}", build_info_line());
    events_ = std::make_unique<io::EventWriter>(workdir_ + "/tensorboard");
  }
  spdlog::info("training {} from step {} to {}: {} ranks x {} images{} on {}, gradients over {} ({} buckets, overlap "
               "{}), {} parameters, {}",
               cfg_.model.name, step_, until, comm_.size(), cfg_.training.batch_size / comm_.size(),
               cfg_.training.grad_accum > 1 ? fmt::format(" in {} micro-batches", cfg_.training.grad_accum) : "",
               device_.str(), grad_comm_->name(), reducer_->buckets().size(), cfg_.dist.overlap ? "on" : "off",
               models::count_parameters(*model_), cfg_.training.precision);
  if (cfg_.data.prefetch > 0) {
    prefetch_ = std::make_unique<Prefetcher>([this](int64_t s) { return batches_->make(s); }, step_, until,
                                             cfg_.data.prefetch);
  }
  auto t0 = clock_type::now(), t_last = t0;
  int64_t last_step = step_;
  torch::Tensor loss_sum;  // this rank's losses since the last log line (on the device)
  int64_t loss_n = 0;
  double data_sum = 0, step_sum = 0, comm_sum = 0;  // rank 0's seconds since the last log line
  bool finished = true;
  while (step_ < until) {
    auto loss = train_step();
    loss_sum = loss_sum.defined() ? loss_sum + loss : loss;
    ++loss_n;
    data_sum += times_.data;
    step_sum += times_.total;
    comm_sum += times_.comm;
    bool last = step_ == until;
    if (step_ % cfg_.training.log_freq == 0 || last) {
      // One small all-reduce of the summed losses: the only host synchronisation of a log line.
      auto l = loss_sum.to(torch::kFloat64).reshape({1}).contiguous();
      grad_comm_->allreduce_sum(l);
      const double mean = l.item<double>() / static_cast<double>(comm_.size() * loss_n);
      auto now = clock_type::now();
      double dt = std::chrono::duration<double>(now - t_last).count();
      double ips = static_cast<double>((step_ - last_step) * cfg_.training.batch_size) / std::max(dt, 1e-9);
      double per_step = std::chrono::duration<double>(now - t0).count() / static_cast<double>(step_ - start);
      spdlog::info("step {:>7}/{} | loss {:.5f} | lr {:.2e} | {:.1f} img/s | ETA {}", step_, until, mean,
                   adam_->lr_at(step_ - 1), ips, format_duration(per_step * static_cast<double>(until - step_)));
      if (root) {
        const double unix_time = unix_seconds();
        const double peak = static_cast<double>(device_.is_cuda() ? compat::cuda_peak_allocated(device_)
                                                                  : peak_rss_bytes()) / 1048576.0;
        const double n = static_cast<double>(loss_n);
        const std::vector<double> values{static_cast<double>(step_),
                                         mean,
                                         adam_->lr_at(step_ - 1),
                                         ips,
                                         unix_time,
                                         std::chrono::duration<double>(now - t0).count(),
                                         static_cast<double>(step_ * cfg_.training.batch_size),
                                         last_grad_norm_,
                                         1e3 * data_sum / n,
                                         1e3 * step_sum / n,
                                         1e3 * comm_sum / n,
                                         peak,
                                         static_cast<double>(nonfinite_total_)};
        csv << fmt::format("{},{:.6g},{:.6g},{:.2f},{:.3f},{:.3f},{},{:.6g},{:.3f},{:.3f},{:.3f},{:.3f},{}\n", step_,
                           values[1], values[2], values[3], values[4], values[5], step_ * cfg_.training.batch_size,
                           values[7], values[8], values[9], values[10], values[11], nonfinite_total_)
            << std::flush;
        const auto& cols = train_log_columns();
        std::vector<std::pair<std::string, double>> scalars;
        for (size_t i = 1; i < cols.size(); ++i) scalars.emplace_back("train/" + cols[i], values[i]);
        events_->scalars(step_, unix_time, scalars);
      }
      t_last = now;
      last_step = step_;
      loss_sum = torch::Tensor();
      loss_n = 0;
      data_sum = step_sum = comm_sum = 0;
    }
    if (stop_agreed_) {
      spdlog::warn("stop requested (SIGTERM/SIGUSR1/SIGINT): checkpointing at step {}", step_);
      save_checkpoint(/*wait=*/true);
      finished = false;
      break;
    }
    maybe_snapshot_ema();
    if (step_ % cfg_.training.snapshot_freq == 0 || last) {
      save_checkpoint(/*wait=*/last);
      if (cfg_.training.snapshot_sampling && cfg_.is_image_data()) snapshot_sampling();
    }
  }
  prefetch_.reset();
  wait_for_checkpoints();
  return finished;
}

}  // namespace scorch::train
