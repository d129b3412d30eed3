// Host batches from keyed per-row streams, and the prefetch thread (see train/batches.h).
#include "scorch/train/batches.h"

#include "scorch/core/error.h"
#include "scorch/core/random.h"
#include "scorch/losses/dsm.h"

namespace scorch::train {

BatchMaker::BatchMaker(const Config& cfg, const data::Source& data, dist::Range share, bool pinned, double T,
                       int64_t num_levels, bool projections, bool finish_on_host)
    : cfg_(cfg),
      data_(data),
      share_(share),
      pinned_(pinned),
      T_(T),
      num_levels_(num_levels),
      projections_(projections),
      finish_on_host_(finish_on_host) {
  steps_per_epoch_ = data_.size() / cfg_.training.batch_size;
  SCORCH_CHECK(steps_per_epoch_ > 0, "{}: {} items are fewer than one batch (training.batch_size = {})", data_.path(),
               data_.size(), cfg_.training.batch_size);
}

torch::Tensor BatchMaker::permutation(int64_t epoch) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (epoch != cached_epoch_) {
    auto g = make_generator(derive_seed(static_cast<uint64_t>(cfg_.seed), Stream::kEpochOrder,
                                        {static_cast<uint64_t>(epoch)}));
    cached_perm_ = torch::randperm(data_.size(), g, torch::kInt64);
    cached_epoch_ = epoch;
  }
  return cached_perm_;
}

HostBatch BatchMaker::make(int64_t step) const {
  const int64_t B = cfg_.training.batch_size, b = share_.size();
  const int64_t epoch = step / steps_per_epoch_, pos = step % steps_per_epoch_;
  auto idx = permutation(epoch).slice(0, pos * B + share_.begin, pos * B + share_.end);
  auto opt = torch::TensorOptions().pinned_memory(pinned_);
  auto with_rows = [b](std::vector<int64_t> item) {
    item.insert(item.begin(), b);
    return item;
  };
  HostBatch hb;
  const bool images = data_.is_image();
  if (images) {
    hb.images = torch::empty(with_rows(data_.item_shape()), opt.dtype(torch::kUInt8));
    data_.gather(idx, hb.images);
  } else {
    hb.points = torch::empty(with_rows(data_.item_shape()), opt.dtype(torch::kFloat32));
    data_.gather(idx, hb.points);
  }
  const auto item = cfg_.item_shape();
  int64_t D = 1;
  for (auto d : item) D *= d;
  hb.t = torch::empty({b}, opt.dtype(torch::kFloat32));
  hb.z = torch::empty(with_rows(item), opt.dtype(torch::kFloat32));
  if (images) hb.flip = torch::empty({b}, opt.dtype(torch::kBool));
  const bool deq = images && cfg_.data.uniform_dequantization;
  if (deq) hb.deq = torch::empty(with_rows(item), opt.dtype(torch::kFloat32));
  const bool discrete = !cfg_.training.continuous;
  if (discrete) hb.levels = torch::empty({b}, opt.dtype(torch::kInt64));
  const int64_t K = cfg_.model.num_classes;
  if (K > 0) {
    SCORCH_CHECK(data_.labels().defined(), "{}: model.num_classes = {} needs class labels (/labels)", data_.path(), K);
    hb.labels = torch::empty({b}, opt.dtype(torch::kInt64));
    torch::index_select_out(hb.labels, data_.labels(), 0, idx);
    const auto* l = hb.labels.data_ptr<int64_t>();
    for (int64_t j = 0; j < b; ++j) {
      SCORCH_CHECK(l[j] >= 0 && l[j] < K, "{}: row {} has class label {}, outside [0, {}) (model.num_classes)",
                   data_.path(), idx[j].item<int64_t>(), l[j], K);
    }
  }
  const double drop = cfg_.training.label_dropout;
  const bool rademacher = cfg_.training.ssm_projection == "rademacher";
  if (projections_) hb.projections = torch::empty(with_rows(item), opt.dtype(torch::kFloat32));
  // Row i of this step: a counter-based stream keyed by (seed, step), counter (lane, row i).
  // Lane 0 holds the scalars (word 0: time, 1: flip, 2: discrete level, 3: label dropout),
  // lane 1 the noise z, lane 2 the dequantisation noise, lane 3 the SSM projection.
  const uint64_t key = derive_seed(static_cast<uint64_t>(cfg_.seed), Stream::kTrainRow, {static_cast<uint64_t>(step)});
  auto* t = hb.t.data_ptr<float>();
  auto* z = hb.z.data_ptr<float>();
  const float span = static_cast<float>(T_ - losses::kTrainEps), eps = static_cast<float>(losses::kTrainEps);
  for (int64_t j = 0; j < b; ++j) {
    const CounterRng rng(key, static_cast<uint64_t>(share_.begin + j));
    float u[2];
    rng.uniform(u, 2, /*lane=*/0);
    t[j] = u[0] * span + eps;
    if (images) hb.flip.data_ptr<bool>()[j] = u[1] < 0.5f;
    if (discrete) hb.levels.data_ptr<int64_t>()[j] = rng.below(num_levels_, /*lane=*/0, /*index=*/2);
    rng.normal(z + j * D, D, /*lane=*/1);
    if (deq) rng.uniform(hb.deq.data_ptr<float>() + j * D, D, /*lane=*/2);
    if (K > 0 && drop > 0) {
      const double u3 = static_cast<double>(rng.bits(/*lane=*/0, /*index=*/3) >> 8) / 16777216.0;
      if (u3 < drop) hb.labels.data_ptr<int64_t>()[j] = K;  // the null label
    }
    if (projections_) {
      float* v = hb.projections.data_ptr<float>() + j * D;
      if (rademacher) {
        for (int64_t d = 0; d < D; ++d) v[d] = (rng.bits(/*lane=*/3, static_cast<uint64_t>(d)) & 1u) ? 1.0f : -1.0f;
      } else {
        rng.normal(v, D, /*lane=*/3);
      }
    }
  }
  if (images && finish_on_host_) {
    // The same operations the device would run on these rows (Trainer::to_device).
    auto x01 = data::images_to_unit(hb.images, hb.deq);
    if (cfg_.data.random_flip) x01 = torch::where(hb.flip.reshape({-1, 1, 1, 1}), x01.flip({3}), x01);
    hb.x0 = data::scale(x01, cfg_.data.centered);
    hb.images = torch::Tensor();
    hb.deq = torch::Tensor();
  }
  return hb;
}

Prefetcher::Prefetcher(std::function<HostBatch(int64_t)> make, int64_t first, int64_t end, int64_t depth)
    : make_(std::move(make)), next_make_(first), next_take_(first), end_(end), depth_(std::max<int64_t>(depth, 1)) {
  thread_ = std::thread([this] { loop(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Prefetcher::loop() {
  for (;;) {
    int64_t step = 0;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || static_cast<int64_t>(ready_.size()) < depth_; });
      if (stop_ || next_make_ >= end_) return;
      step = next_make_++;
    }
    try {
      auto hb = make_(step);
      std::lock_guard<std::mutex> lk(mu_);
      ready_.push_back(std::move(hb));
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

HostBatch Prefetcher::take(int64_t step) {
  std::unique_lock<std::mutex> lk(mu_);
  SCORCH_CHECK(step == next_take_ && step < end_, "prefetcher: asked for step {} but the next prepared one is {}", step,
               next_take_);
  cv_.wait(lk, [&] { return !ready_.empty() || error_; });
  if (ready_.empty()) std::rethrow_exception(error_);
  auto hb = std::move(ready_.front());
  ready_.pop_front();
  ++next_take_;
  cv_.notify_all();
  return hb;
}

}  // namespace scorch::train
