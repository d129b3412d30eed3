// The trainer's checkpoint state: host copies of everything a resume needs (weights, EMA
// and power-function EMA profiles, Adam's moments, every rank's generators, the data
// position), applying such a state, finding the newest checkpoint that verifies, EMA
// snapshots, and checkpoint writes (in the background writer, train/checkpoint_writer.h).
#include "scorch/train/trainer.h"

#include <ATen/Context.h>

#include <chrono>
#include <filesystem>

#include "scorch/core/error.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/core/torch_compat.h"
#include "scorch/core/version.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/backend.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/ema_snapshots.h"
#include "scorch/io/files.h"

namespace scorch::train {

namespace {

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

io::TrainState Trainer::state() const {
  io::TrainState st;
  st.step = step_;
  st.world_size = comm_.size();
  st.epoch = step_ / batches_->steps_per_epoch();
  st.batch_in_epoch = step_ % batches_->steps_per_epoch();
  st.config_toml = to_toml(cfg_);
  st.lineage = lineage_;
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
  // A checkpoint written before scorch recorded histories starts one here.
  lineage_ = st.lineage.empty() ? io::lineage_with_branch("", st.step) : st.lineage;
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
    msg = r.path.empty() && !r.set_aside.empty() ? fmt::format("!{}", r.failure(workdir)) : r.path;
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

std::string Trainer::resume_from(const std::string& path) { return resume(ResumePoint{path, {}, false}); }

std::string Trainer::resume(ResumePoint p) {
  if (p.path.empty()) return "";
  load_state(p.state.source == p.path ? p.state : io::load_checkpoint(p.path));
  if (p.new_branch) lineage_ = io::lineage_with_branch(lineage_, step_);
  spdlog::info("resumed from {} at step {}{}", p.path, step_, p.new_branch ? " (a new branch of its history)" : "");
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
  s.lineage = lineage_;
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

void Trainer::wait_for_checkpoints() {
  if (writer_) writer_->wait();
}

CheckpointStats Trainer::checkpoint_stats() const { return writer_ ? writer_->stats() : CheckpointStats{}; }

}  // namespace scorch::train
