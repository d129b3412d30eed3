// NCCL communicator for CUDA tensors (see dist/nccl_communicator.h). Compiled only when
// CMake finds a CUDA LibTorch and NCCL. Small metadata and gather_rows go through the MPI
// control communicator; everything here is stream-ordered and never blocks the host except
// at set-up.
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <iostream>
#include <mutex>
#include <thread>

#include "scorch/core/error.h"
#include "scorch/dist/nccl_communicator.h"

namespace scorch::dist {

namespace {

void nccl_check(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) SCORCH_THROW("NCCL {} failed: {}", what, ncclGetErrorString(rc));
}

ncclDataType_t nccl_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kFloat16: return ncclFloat16;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8: return ncclUint8;
    default: SCORCH_THROW("NCCL: unsupported dtype {}", c10::toString(t));
  }
}

// Completion of one collective: an event recorded on the NCCL stream after it.
class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<at::cuda::CUDAEvent> done, torch::Tensor keep, c10::DeviceIndex device, ncclComm_t comm)
      : done_(std::move(done)), keep_(std::move(keep)), device_(device), comm_(comm) {}
  void wait() override {
    // Later work on the caller's stream runs after the collective; the host does not wait.
    done_->block(c10::cuda::getCurrentCUDAStream(device_));
    ncclResult_t async = ncclSuccess;
    nccl_check(ncclCommGetAsyncError(comm_, &async), "CommGetAsyncError");
    nccl_check(async, "asynchronous collective");
  }

 private:
  std::shared_ptr<at::cuda::CUDAEvent> done_;
  torch::Tensor keep_;
  c10::DeviceIndex device_;
  ncclComm_t comm_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& control, const torch::Device& device, double timeout_s)
      : timeout_s_(timeout_s),
        control_(control),
        device_(device),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())) {
    SCORCH_CHECK(device.is_cuda() && device.has_index(), "NCCL communicator needs a CUDA device with an index");
    c10::cuda::CUDAGuard guard(device_.index());
    ncclUniqueId id;
    if (control_.rank() == 0) nccl_check(ncclGetUniqueId(&id), "GetUniqueId");
    auto buf = torch::zeros({static_cast<int64_t>(sizeof(id))}, torch::kUInt8);
    std::memcpy(buf.data_ptr(), &id, sizeof(id));
    control_.broadcast(buf, 0);
    std::memcpy(&id, buf.data_ptr(), sizeof(id));
    nccl_check(ncclCommInitRank(&comm_, control_.size(), id, control_.rank()), "CommInitRank");
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    if (!comm_) return;
    // During error unwinding a peer may never arrive: abort rather than wait.
    if (std::uncaught_exceptions() > 0) {
      ncclCommAbort(comm_);
    } else {
      ncclCommDestroy(comm_);
    }
  }

  int rank() const override { return control_.rank(); }
  int size() const override { return control_.size(); }
  int local_rank() const override { return control_.local_rank(); }
  int local_size() const override { return control_.local_size(); }
  std::string name() const override { return fmt::format("nccl({} ranks, {})", size(), device_.str()); }
  torch::Device device() const override { return device_; }

  WorkPtr iallreduce_sum(const torch::Tensor& t) override {
    check_tensor(t, "all-reduce");
    return enqueue(t, [&](cudaStream_t s) {
      nccl_check(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.scalar_type()),
                               ncclSum, comm_, s),
                 "AllReduce");
    });
  }

  void broadcast(torch::Tensor& t, int root) override {
    check_tensor(t, "broadcast");
    enqueue(t, [&](cudaStream_t s) {
      nccl_check(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size(),
                               ncclUint8, root, comm_, s),
                 "Broadcast");
    })->wait();
  }

  torch::Tensor all_gather(const torch::Tensor& t_in) override {
    auto t = t_in.to(device_).contiguous();
    std::vector<int64_t> shape{size()};
    shape.insert(shape.end(), t.sizes().begin(), t.sizes().end());
    auto out = torch::empty(shape, t.options());
    enqueue(out, [&](cudaStream_t s) {
      nccl_check(ncclAllGather(t.data_ptr(), out.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size(),
                               ncclUint8, comm_, s),
                 "AllGather");
    })->wait();
    return out;
  }

  std::unique_ptr<SharedCounter> make_counter(int64_t initial) override { return control_.make_counter(initial); }
  std::unique_ptr<NodeShared> make_node_shared(int64_t bytes) override { return control_.make_node_shared(bytes); }
  torch::Tensor gather_rows(const torch::Tensor& t, int root) override { return control_.gather_rows(t.cpu(), root); }
  void barrier() override {
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
    control_.barrier();
  }
  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    control_.abort(code);
    std::_Exit(code);  // not reached: control_.abort ends the process
  }

 private:
  void check_tensor(const torch::Tensor& t, const char* what) const {
    SCORCH_CHECK(t.is_cuda() && t.device() == device_, "NCCL {}: tensor on {} but the communicator is on {}", what,
                 t.device().str(), device_.str());
    SCORCH_CHECK(t.is_contiguous(), "NCCL {} needs a contiguous tensor", what);
  }

  // Orders the NCCL stream after the caller's current stream, runs `launch` on it and
  // records the completion event.
  template <class F>
  WorkPtr enqueue(const torch::Tensor& t, F&& launch) {
    c10::cuda::CUDAGuard guard(device_.index());
    auto current = c10::cuda::getCurrentCUDAStream(device_.index());
    at::cuda::CUDAEvent ready(cudaEventDisableTiming);
    ready.record(current);
    ready.block(stream_);
    // The caching allocator must not hand `t`'s memory to another tensor before the NCCL
    // stream is done with it.
    c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
    launch(stream_.stream());
    auto done = std::make_shared<at::cuda::CUDAEvent>(cudaEventDisableTiming);
    done->record(stream_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      in_flight_.emplace_back(done, std::chrono::steady_clock::now());
    }
    return std::make_shared<NcclWork>(std::move(done), t, device_.index(), comm_);
  }

  // The watchdog: collectives on one stream complete in order, so only the oldest one in
  // flight is polled.
  void watch() {
    c10::cuda::CUDAGuard guard(device_.index());
    std::unique_lock<std::mutex> lk(mu_);
    while (!quit_) {
      cv_.wait_for(lk, std::chrono::milliseconds(200));
      while (!in_flight_.empty() && in_flight_.front().first->query()) in_flight_.pop_front();
      std::string why;
      ncclResult_t async = ncclSuccess;
      if (comm_ && ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess) {
        why = fmt::format("NCCL reported an asynchronous error: {}", ncclGetErrorString(async));
      } else if (!in_flight_.empty()) {
        const double waited =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - in_flight_.front().second).count();
        if (waited > timeout_s_) {
          why = fmt::format("a collective has not completed after {:.0f} s (dist.timeout_s = {}): a rank died or hangs",
                            waited, timeout_s_);
        }
      }
      if (!why.empty()) {
        std::cerr << fmt::format("scorch: error: [rank {}] NCCL watchdog on {}: {}; aborting the job\n", rank(),
                                 device_.str(), why)
                  << std::flush;
        ncclCommAbort(comm_);
        comm_ = nullptr;
        control_.abort(1);
      }
    }
  }

  double timeout_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<at::cuda::CUDAEvent>, std::chrono::steady_clock::time_point>> in_flight_;
  bool quit_ = false;
  std::thread watchdog_;
  Communicator& control_;
  torch::Device device_;
  c10::cuda::CUDAStream stream_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& control, const torch::Device& device,
                                                     double timeout_s) {
  return std::make_unique<NcclCommunicator>(control, device, timeout_s);
}

}  // namespace scorch::dist
