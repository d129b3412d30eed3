// The LibTorch version differences (see core/torch_compat.h).
#include "scorch/core/torch_compat.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/version.h>
#include <ATen/detail/CUDAHooksInterface.h>
#ifdef SCORCH_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "scorch/core/error.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SCORCH_AUTOCAST_PER_DEVICE_TYPE 1
#endif

namespace scorch::compat {

namespace {

bool autocast_enabled(torch::DeviceType t) {
#ifdef SCORCH_AUTOCAST_PER_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(t);
#else
  return t == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}
void set_autocast_enabled(torch::DeviceType t, bool on) {
#ifdef SCORCH_AUTOCAST_PER_DEVICE_TYPE
  at::autocast::set_autocast_enabled(t, on);
#else
  if (t == torch::kCUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
#endif
}
torch::ScalarType autocast_dtype(torch::DeviceType t) {
#ifdef SCORCH_AUTOCAST_PER_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(t);
#else
  return t == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}
void set_autocast_dtype(torch::DeviceType t, torch::ScalarType d) {
#ifdef SCORCH_AUTOCAST_PER_DEVICE_TYPE
  at::autocast::set_autocast_dtype(t, d);
#else
  if (t == torch::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(d);
  } else {
    at::autocast::set_autocast_cpu_dtype(d);
  }
#endif
}

// A post hook of an AccumulateGrad node: runs after the gradient has been accumulated.
class CallAfterAccumulate final : public torch::autograd::FunctionPostHook {
 public:
  explicit CallAfterAccumulate(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

}  // namespace

AutocastGuard::AutocastGuard(const torch::Device& device, bool enabled, torch::ScalarType dtype)
    : type_(device.type()), active_(enabled) {
  if (!active_) return;
  SCORCH_CHECK(type_ == torch::kCPU || type_ == torch::kCUDA, "autocast is not supported on {}", device.str());
  prev_enabled_ = autocast_enabled(type_);
  prev_dtype_ = autocast_dtype(type_);
  set_autocast_dtype(type_, dtype);
  set_autocast_enabled(type_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  set_autocast_enabled(type_, prev_enabled_);
  set_autocast_dtype(type_, prev_dtype_);
  // Leaving the outermost region drops the cached low-precision copies of the weights.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

std::string torch_version() { return TORCH_VERSION; }

std::string torch_cuda_version() {
#ifdef SCORCH_HAVE_CUDA
  const long v = at::detail::getCUDAHooks().versionCUDART();  // CUDART_VERSION of LibTorch's build: 13020
  return fmt::format("{}.{}", v / 1000, (v % 1000) / 10);
#else
  return "none";
#endif
}

std::string cudnn_version() {
  if (!at::Context::hasCuDNN()) return "none";
  const long v = at::detail::getCUDAHooks().versionCuDNN();
  // cuDNN 9 encodes major*10000 + minor*100 + patch; 8 encodes major*1000 + minor*100 + patch.
  return v >= 90000 ? fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
                    : fmt::format("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100);
}

int64_t cuda_peak_allocated(const torch::Device& device) {
#ifdef SCORCH_HAVE_CUDA
  if (!device.is_cuda()) return 0;
  // Element 0 is StatType::AGGREGATE; the enum's namespace moved in 2.6 (see the header).
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
  return stats.allocated_bytes[0].peak;
#else
  (void)device;
  return 0;
#endif
}

void set_tf32(bool enabled) {
  at::globalContext().setAllowTF32CuBLAS(enabled);
  at::globalContext().setAllowTF32CuDNN(enabled);
}

GradReadyHook::GradReadyHook(const torch::Tensor& param, std::function<void()> fn) {
  SCORCH_CHECK(param.is_leaf() && param.requires_grad(), "GradReadyHook: the tensor must be a leaf that requires grad");
  auto acc = torch::autograd::impl::grad_accumulator(param);  // shared_ptr or intrusive_ptr (see the header)
  accumulator_ = acc.get();
  SCORCH_CHECK(accumulator_ != nullptr, "GradReadyHook: no gradient accumulator for this tensor");
  owner_ = std::make_shared<decltype(acc)>(std::move(acc));
  key_ = accumulator_->add_post_hook(std::make_unique<CallAfterAccumulate>(std::move(fn)));
}

GradReadyHook::~GradReadyHook() {
  if (accumulator_) accumulator_->del_post_hook(key_);
}

}  // namespace scorch::compat
