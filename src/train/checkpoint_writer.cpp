// The background checkpoint writer (see train/checkpoint_writer.h).
#include "scorch/train/checkpoint_writer.h"

#include <chrono>
#include <filesystem>
#include <utility>

#include "scorch/core/log.h"

namespace scorch::train {

namespace {
using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }
}  // namespace

CheckpointWriter::CheckpointWriter(std::string workdir, int64_t keep, int64_t keep_every, bool async)
    : workdir_(std::move(workdir)), keep_(keep), keep_every_(keep_every), async_(async) {
  if (async_) thread_ = std::thread([this] { loop(); });
}

CheckpointWriter::~CheckpointWriter() {
  if (!async_) return;
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return !job_ && !busy_; });
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (error_) {
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      spdlog::error("checkpoint write failed: {}", e.what());
    }
  }
}

void CheckpointWriter::write(const io::TrainState& st, const std::string& path) {
  const auto t0 = clock_type::now();
  io::save_checkpoint(path, st);
  const double dt = since(t0);
  std::error_code ec;
  const auto bytes = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  spdlog::info("checkpoint written: {} ({:.1f} MB in {:.2f} s{})", path, static_cast<double>(bytes) / 1e6, dt,
               async_ ? ", in the background" : "");
  for (const auto& p : io::prune_checkpoints(workdir_, keep_, keep_every_)) spdlog::info("checkpoint removed: {}", p);
  std::lock_guard<std::mutex> lk(mu_);
  stats_.writes += 1;
  stats_.last_write_s = dt;
  stats_.total_write_s += dt;
  stats_.last_bytes = bytes;
}

void CheckpointWriter::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [this] { return job_.has_value() || quit_; });
    if (!job_) return;  // quit with nothing left
    auto job = std::move(*job_);
    job_.reset();
    busy_ = true;
    lk.unlock();
    std::exception_ptr err;
    try {
      write(job.first, job.second);
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    busy_ = false;
    if (err) error_ = err;
    cv_.notify_all();
  }
}

void CheckpointWriter::rethrow_locked() {
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void CheckpointWriter::rethrow_if_failed() {
  std::lock_guard<std::mutex> lk(mu_);
  rethrow_locked();
}

void CheckpointWriter::wait() {
  if (async_) {
    const auto t0 = clock_type::now();
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return !job_ && !busy_; });
    stats_.total_wait_s += since(t0);
  }
  rethrow_if_failed();
}

void CheckpointWriter::submit(io::TrainState st, const std::string& path) {
  if (!async_) {
    write(st, path);
    return;
  }
  const auto t0 = clock_type::now();
  std::unique_lock<std::mutex> lk(mu_);
  if (job_ || busy_) {
    spdlog::info("checkpoint of step {} waits for the previous write to finish", st.step);
    cv_.wait(lk, [this] { return !job_ && !busy_; });
  }
  stats_.total_wait_s += since(t0);
  rethrow_locked();
  job_.emplace(std::move(st), path);
  lk.unlock();
  cv_.notify_all();
}

CheckpointStats CheckpointWriter::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace scorch::train
