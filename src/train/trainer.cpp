// The training loop and its checkpoint state. Randomness: the data order is a function of
// (seed, epoch), the per-step noise of (seed, step), dropout uses each rank's torch default
// generator (saved per rank). Nothing depends on the number of ranks except dropout.
#include "scorch/train/trainer.h"

#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/dist/sharding.h"
#include "scorch/losses/discrete.h"
#include "scorch/losses/dsm.h"
#include "scorch/sde/variants.h"
#include "scorch/models/score_fn.h"

namespace fs = std::filesystem;

namespace scorch::train {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

NamedTensors named(const torch::OrderedDict<std::string, torch::Tensor>& d) {
  NamedTensors out;
  for (const auto& it : d) out.emplace_back(it.key(), it.value());
  return out;
}

void copy_checked(const io::TensorMap& src, const NamedTensors& dst, const std::string& what) {
  for (const auto& [name, t] : dst) {
    auto it = src.find(name);
    SCORCH_CHECK(it != src.end(), "checkpoint lacks {} '{}' that the model has (was it trained with another model config?)",
                 what, name);
    SCORCH_CHECK(it->second.sizes() == t.sizes(), "checkpoint {} '{}' has shape [{}] but the model expects [{}]", what,
                 name, fmt::join(it->second.sizes(), ", "), fmt::join(t.sizes(), ", "));
  }
  for (const auto& [name, t] : src) {
    bool found = std::any_of(dst.begin(), dst.end(), [&](const auto& p) { return p.first == name; });
    SCORCH_CHECK(found, "checkpoint has {} '{}' that the model does not have", what, name);
  }
  torch::NoGradGuard ng;
  for (const auto& [name, t] : dst) t.copy_(src.at(name));
}

io::TensorMap to_map(const NamedTensors& v) {
  io::TensorMap m;
  for (const auto& [name, t] : v) m[name] = t.detach().clone();
  return m;
}

NamedTensors zip(const NamedTensors& names, std::vector<torch::Tensor>& tensors) {
  NamedTensors out;
  for (size_t i = 0; i < names.size(); ++i) out.emplace_back(names[i].first, tensors[i]);
  return out;
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}
bool stop_requested() { return g_stop != 0; }

uint64_t derive_seed(uint64_t seed, std::initializer_list<uint64_t> parts) {
  uint64_t h = splitmix(seed);
  for (auto p : parts) h = splitmix(h ^ splitmix(p + 0x632be59bd9b4e019ULL));
  return h;
}

Trainer::Trainer(const Config& cfg, dist::Communicator& comm, std::string workdir)
    : cfg_(cfg), comm_(comm), workdir_(std::move(workdir)) {
  validate(cfg_);
  dist::batch_share(cfg_.training.batch_size, comm_.rank(), comm_.size());  // divisibility check
  SCORCH_CHECK(!cfg_.data.path.empty(), "data.path is not set: point it at a training HDF5 file (scorch prepare ...)");
  data_ = data::load(cfg_.data.path);
  data::check_matches(data_, cfg_);
  steps_per_epoch_ = data_.size() / cfg_.training.batch_size;
  SCORCH_CHECK(steps_per_epoch_ > 0, "{}: {} items are fewer than one batch (training.batch_size = {})",
               cfg_.data.path, data_.size(), cfg_.training.batch_size);

  sde_ = sde::make_sde(cfg_);
  torch::manual_seed(cfg_.seed);  // identical on every rank; rank 0's weights win anyway
  model_ = models::make_model(cfg_);
  std::vector<torch::Tensor> all;
  for (auto& p : model_->parameters()) all.push_back(p);
  for (auto& b : model_->buffers()) all.push_back(b);
  dist::broadcast_tensors(comm_, all);
  for (auto& [name, p] : named(model_->named_parameters()))
    if (p.requires_grad()) trainable_.emplace_back(name, p);
  adam_ = std::make_unique<optim::Adam>(trainable_, cfg_.optim);
  ema_ = std::make_unique<optim::EMA>(trainable_, cfg_.model.ema_rate);
  // Dropout draws from each rank's default generator: distinct per rank, saved per rank.
  torch::manual_seed(derive_seed(static_cast<uint64_t>(cfg_.seed), {1, static_cast<uint64_t>(comm_.rank())}));
}

torch::Tensor Trainer::epoch_permutation(int64_t epoch) {
  if (epoch != cached_epoch_) {
    auto g = generator(derive_seed(static_cast<uint64_t>(cfg_.seed), {2, static_cast<uint64_t>(epoch)}));
    cached_perm_ = torch::randperm(data_.size(), g, torch::kInt64);
    cached_epoch_ = epoch;
  }
  return cached_perm_;
}

double Trainer::train_step() {
  const int64_t B = cfg_.training.batch_size;
  const auto share = dist::batch_share(B, comm_.rank(), comm_.size());
  const int64_t epoch = step_ / steps_per_epoch_, pos = step_ % steps_per_epoch_;
  auto idx = epoch_permutation(epoch).slice(0, pos * B, (pos + 1) * B).slice(0, share.begin, share.end);

  // Noise for the whole global batch, then this rank's rows: independent of the world size.
  auto g = generator(derive_seed(static_cast<uint64_t>(cfg_.seed), {3, static_cast<uint64_t>(step_)}));
  auto shape = cfg_.item_shape();
  std::vector<int64_t> full{B};
  full.insert(full.end(), shape.begin(), shape.end());
  auto t_all = torch::rand({B}, g, torch::kFloat32) * (sde_->T() - losses::kTrainEps) + losses::kTrainEps;
  auto z_all = torch::randn(full, g, torch::kFloat32);
  torch::Tensor x0;
  if (data_.is_image()) {
    auto flip_all = torch::rand({B}, g, torch::kFloat32) < 0.5;
    auto deq_all = torch::rand(full, g, torch::kFloat32);
    auto u8 = data_.images.index_select(0, idx);
    auto x01 = data::images_to_unit(u8, cfg_.data.uniform_dequantization ? deq_all.slice(0, share.begin, share.end)
                                                                          : torch::Tensor());
    if (cfg_.data.random_flip) {
      auto flip = flip_all.slice(0, share.begin, share.end).reshape({-1, 1, 1, 1});
      x01 = torch::where(flip, x01.flip({3}), x01);
    }
    x0 = data::scale(x01, cfg_.data.centered);
  } else {
    x0 = data_.points.index_select(0, idx);
  }
  auto t = t_all.slice(0, share.begin, share.end);
  auto z = z_all.slice(0, share.begin, share.end);

  model_->train();
  for (auto& [name, p] : trainable_) p.mutable_grad() = torch::Tensor();
  torch::Tensor loss;
  if (cfg_.training.continuous) {
    auto score = models::make_score_fn(*model_, *sde_);
    loss = losses::dsm_loss(score, *sde_, x0, t, z, {cfg_.training.reduce_mean, cfg_.training.likelihood_weighting});
  } else {
    // Discrete levels for the global batch, drawn after everything else in this step.
    auto labels = torch::randint(0, sde_->N(), {B}, g, torch::kInt64).slice(0, share.begin, share.end);
    losses::OutputFn net = [this](const torch::Tensor& x, const torch::Tensor& l) { return model_->forward(x, l); };
    loss = sde_->name() == "vesde"
               ? losses::smld_loss_per_item(net, dynamic_cast<const sde::VESDE&>(*sde_), x0, labels, z,
                                            cfg_.training.reduce_mean)
                     .mean()
               : losses::ddpm_loss_per_item(net, dynamic_cast<const sde::VPSDE&>(*sde_), x0, labels, z,
                                            cfg_.training.reduce_mean)
                     .mean();
  }
  loss.backward();

  // One all-reduce: gradients, the loss and the stop flag (any rank signalled -> all stop).
  auto extra = torch::stack({loss.detach().to(torch::kFloat32), torch::tensor(stop_requested() ? 1.0f : 0.0f)});
  std::vector<torch::Tensor> ps;
  for (auto& [name, p] : trainable_) ps.push_back(p);
  dist::average_gradients(comm_, ps, &extra);
  // Every rank acts on the reduced flag, never on its own signal: a signal that arrives
  // on one rank after this point is seen by all ranks at the next step.
  stop_agreed_ = extra[1].item<float>() > 0;

  adam_->step(step_);
  ++step_;
  ema_->update(trainable_);
  return extra[0].item<double>();
}

io::TrainState Trainer::state() const {
  io::TrainState st;
  st.step = step_;
  st.world_size = comm_.size();
  st.epoch = step_ / steps_per_epoch_;
  st.batch_in_epoch = step_ % steps_per_epoch_;
  st.config_toml = to_toml(cfg_);
  st.params = to_map(named(model_->named_parameters()));
  st.buffers = to_map(named(model_->named_buffers()));
  st.ema = to_map(zip(trainable_, ema_->shadow()));
  st.exp_avg = to_map(zip(trainable_, adam_->exp_avg()));
  st.exp_avg_sq = to_map(zip(trainable_, adam_->exp_avg_sq()));
  st.ema_decay = ema_->decay();
  st.ema_updates = ema_->num_updates();
  st.adam_steps = adam_->num_steps();
  return st;
}

void Trainer::load_state(const io::TrainState& st) {
  // Everything is checked against the model before the first tensor is copied.
  auto params = named(model_->named_parameters());
  auto buffers = named(model_->named_buffers());
  for (const auto& [src, what] : {std::pair{&st.ema, "EMA tensor"}, std::pair{&st.exp_avg, "Adam exp_avg"},
                                  std::pair{&st.exp_avg_sq, "Adam exp_avg_sq"}}) {
    for (const auto& [name, p] : trainable_) {
      auto it = src->find(name);
      SCORCH_CHECK(it != src->end() && it->second.sizes() == p.sizes(), "checkpoint {} '{}' is missing or mis-shaped",
                   what, name);
    }
  }
  copy_checked(st.params, params, "parameter");
  copy_checked(st.buffers, buffers, "buffer");
  torch::NoGradGuard ng;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    const auto& name = trainable_[i].first;
    ema_->shadow()[i].copy_(st.ema.at(name));
    adam_->exp_avg()[i].copy_(st.exp_avg.at(name));
    adam_->exp_avg_sq()[i].copy_(st.exp_avg_sq.at(name));
  }
  ema_->set_num_updates(st.ema_updates);
  adam_->set_num_steps(st.adam_steps);
  step_ = st.step;
  if (st.rng.defined() && st.rng.size(0) == comm_.size()) {
    auto gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(st.rng[comm_.rank()].clone());
  } else {
    spdlog::warn("checkpoint was written by {} ranks, this job has {}: dropout RNG streams are re-seeded",
                 st.world_size, comm_.size());
    torch::manual_seed(derive_seed(static_cast<uint64_t>(cfg_.seed),
                                   {4, static_cast<uint64_t>(step_), static_cast<uint64_t>(comm_.rank())}));
  }
}

std::string Trainer::resume_latest() {
  std::string path = io::latest_checkpoint(workdir_);
  if (path.empty()) return "";
  load_state(io::load_checkpoint(path));
  spdlog::info("resumed from {} at step {}", path, step_);
  return path;
}

std::string Trainer::save_checkpoint() {
  auto rng = at::detail::getDefaultCPUGenerator().get_state();
  auto all = comm_.gather_rows(rng.unsqueeze(0), 0);
  std::string path = io::checkpoint_path(workdir_, step_);
  if (comm_.rank() == 0) {
    auto st = state();
    st.rng = all;
    io::save_checkpoint(path, st);
    spdlog::info("checkpoint written: {}", path);
  }
  return path;
}

bool Trainer::run(int64_t until) {
  if (until < 0) until = cfg_.training.n_iters;
  const bool root = comm_.rank() == 0;
  std::ofstream csv;
  if (root) {
    fs::create_directories(workdir_);
    bool fresh = !fs::exists(workdir_ + "/train_log.csv");
    csv.open(workdir_ + "/train_log.csv", std::ios::app);
    if (fresh) csv << "step,loss,lr,images_per_s\n";
  }
  const int64_t start = step_;
  if (step_ >= until) {
    spdlog::info("already at step {} (target {}): nothing to train", step_, until);
    return true;
  }
  spdlog::info("training {} from step {} to {}: {} ranks x {} images, {} parameters", cfg_.model.name, step_, until,
               comm_.size(), cfg_.training.batch_size / comm_.size(), models::count_parameters(*model_));
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now(), t_last = t0;
  int64_t last_step = step_;
  double loss_sum = 0;
  int64_t loss_n = 0;
  while (step_ < until) {
    loss_sum += train_step();
    ++loss_n;
    bool last = step_ == until;
    if (step_ % cfg_.training.log_freq == 0 || last) {
      auto now = clock::now();
      double dt = std::chrono::duration<double>(now - t_last).count();
      double ips = static_cast<double>((step_ - last_step) * cfg_.training.batch_size) / std::max(dt, 1e-9);
      double per_step = std::chrono::duration<double>(now - t0).count() / static_cast<double>(step_ - start);
      spdlog::info("step {:>7}/{} | loss {:.5f} | lr {:.2e} | {:.1f} img/s | ETA {}", step_, until,
                   loss_sum / static_cast<double>(loss_n), adam_->lr_at(step_ - 1), ips,
                   format_duration(per_step * static_cast<double>(until - step_)));
      if (root) csv << fmt::format("{},{:.6g},{:.6g},{:.2f}\n", step_, loss_sum / loss_n, adam_->lr_at(step_ - 1), ips) << std::flush;
      t_last = now;
      last_step = step_;
      loss_sum = 0;
      loss_n = 0;
    }
    if (stop_agreed_) {
      spdlog::warn("stop requested (SIGTERM/SIGUSR1): checkpointing at step {}", step_);
      save_checkpoint();
      return false;
    }
    if (step_ % cfg_.training.snapshot_freq == 0 || last) save_checkpoint();
  }
  return true;
}

void load_weights(models::ScoreNet& model, const io::TrainState& st, bool use_ema) {
  auto params = named(model.named_parameters());
  io::TensorMap src = st.params;
  if (use_ema) {
    for (const auto& [name, t] : st.ema) src[name] = t;  // trainable weights from the EMA
  }
  copy_checked(src, params, "parameter");
  copy_checked(st.buffers, named(model.named_buffers()), "buffer");
}

}  // namespace scorch::train
