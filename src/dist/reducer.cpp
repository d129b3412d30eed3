// Bucketed, overlapped gradient averaging (see dist/reducer.h).
#include "scorch/dist/reducer.h"

#include "scorch/core/error.h"
#include "scorch/core/torch_compat.h"

namespace scorch::dist {

Reducer::Reducer(std::vector<std::pair<std::string, torch::Tensor>> params, Communicator& comm, ReducerOptions opt)
    : params_(std::move(params)), comm_(comm), opt_(opt) {
  SCORCH_CHECK(!params_.empty(), "Reducer: no parameters");
  SCORCH_CHECK(opt_.bucket_mb > 0 && opt_.first_bucket_mb > 0, "dist.bucket_mb and dist.first_bucket_mb must be > 0");
  const auto& p0 = params_.front().second;
  for (const auto& [name, p] : params_) {
    SCORCH_CHECK(p.device() == p0.device() && p.scalar_type() == p0.scalar_type(),
                 "Reducer: parameter '{}' is {} on {}, the first is {} on {}: one dtype and device expected", name,
                 c10::toString(p.scalar_type()), p.device().str(), c10::toString(p0.scalar_type()), p0.device().str());
    SCORCH_CHECK(p.is_non_overlapping_and_dense(), "Reducer: parameter '{}' is not dense", name);
  }
  // Buckets in reverse registration order: the first closes at first_bucket_mb, the rest at bucket_mb.
  const size_t n = params_.size();
  bucket_of_.assign(n, 0);
  std::vector<std::vector<size_t>> groups(1);
  double bytes = 0, limit = opt_.first_bucket_mb * 1024 * 1024;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = n - 1 - k;
    groups.back().push_back(i);
    bytes += static_cast<double>(params_[i].second.numel() * params_[i].second.element_size());
    if (bytes >= limit && k + 1 < n) {
      groups.emplace_back();
      bytes = 0;
      limit = opt_.bucket_mb * 1024 * 1024;
    }
  }
  views_.resize(n);
  for (size_t b = 0; b < groups.size(); ++b) {
    Bucket bk;
    bk.params = groups[b];
    int64_t numel = 0;
    for (auto i : bk.params) numel += params_[i].second.numel();
    bk.flat = torch::zeros({numel}, p0.options().requires_grad(false));
    int64_t off = 0;
    for (auto i : bk.params) {
      const auto& p = params_[i].second;
      views_[i] = bk.flat.as_strided(p.sizes(), p.strides(), bk.flat.storage_offset() + off);
      bucket_of_[i] = b;
      off += p.numel();
    }
    bk.expected = static_cast<int64_t>(bk.params.size());
    buckets_.push_back(std::move(bk));
  }
  ready_.assign(n, 0);
  used_.assign(n, 0);
  unused_.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    hooks_.push_back(std::make_unique<compat::GradReadyHook>(params_[i].second, [this, i] { on_ready(i); }));
  }
}

Reducer::~Reducer() { hooks_.clear(); }

std::vector<std::string> Reducer::unused_parameters() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (unused_[i]) out.push_back(params_[i].first);
  return out;
}

void Reducer::zero_grad() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& b : buckets_) {
    SCORCH_CHECK(!b.work, "Reducer: zero_grad() while an all-reduce of the previous step is pending (finish() missing)");
    b.flat.zero_();
    b.pending = b.expected;
  }
  for (size_t i = 0; i < params_.size(); ++i) params_[i].second.mutable_grad() = views_[i];
  std::fill(ready_.begin(), ready_.end(), 0);
  std::fill(used_.begin(), used_.end(), 0);
  next_launch_ = 0;
  launched_in_backward_ = 0;
}

void Reducer::on_ready(size_t i) {
  std::lock_guard<std::mutex> lk(mu_);
  used_[i] = 1;
  if (!sync_) return;
  SCORCH_CHECK(!unused_[i],
               "parameter '{}' received a gradient, but no rank gave it one in the first step: scorch's gradient "
               "reducer assumes every step uses the same parameters",
               params_[i].first);
  if (ready_[i]) return;
  ready_[i] = 1;
  auto& b = buckets_[bucket_of_[i]];
  SCORCH_CHECK(!b.work, "parameter '{}' received its gradient after its bucket was all-reduced", params_[i].first);
  if (--b.pending == 0 && opt_.overlap) launch_in_order();
}

void Reducer::launch_in_order() {
  while (next_launch_ < buckets_.size()) {
    auto& b = buckets_[next_launch_];
    if (!first_step_ && b.expected == 0) {  // only unused parameters: nothing to communicate
      ++next_launch_;
      continue;
    }
    if (b.pending > 0 && !in_finish_) break;
    b.work = comm_.iallreduce_sum(b.flat);
    if (!in_finish_) ++launched_in_backward_;
    ++next_launch_;
  }
}

void Reducer::finish() {
  std::lock_guard<std::mutex> lk(mu_);
  in_finish_ = true;
  launch_in_order();
  if (first_step_) {
    // Which parameters did any rank use? (launched after every bucket: the same order on every rank)
    auto counts = torch::tensor(std::vector<int32_t>(used_.begin(), used_.end()), torch::kInt32)
                      .to(buckets_.front().flat.device());
    comm_.allreduce_sum(counts);
    counts = counts.cpu();
    const auto* users = counts.data_ptr<int32_t>();
    for (size_t i = 0; i < params_.size(); ++i) unused_[i] = users[i] == 0;
    for (auto& b : buckets_) {
      b.expected = 0;
      for (auto i : b.params) b.expected += unused_[i] ? 0 : 1;
    }
    first_step_ = false;
  }
  for (auto& b : buckets_) {
    if (!b.work) continue;
    b.work->wait();
    b.work.reset();
    if (comm_.size() > 1) b.flat.div_(static_cast<double>(comm_.size()));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (unused_[i]) params_[i].second.mutable_grad() = torch::Tensor();
  }
  in_finish_ = false;
}

}  // namespace scorch::dist
