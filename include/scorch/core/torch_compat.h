// Every difference between the LibTorch versions scorch builds against (Debian's 1.13 CPU
// build, a CUDA LibTorch 2.x from a PyTorch install) lives behind these few functions, so
// no other file tests TORCH_VERSION.
//
// Audit of every LibTorch API scorch uses, against PyTorch 2.x's C++ headers, now compiled and
// linked against PyPI's torch 2.15 (CUDA 13.2) on every CI run (jobs/setup.sh --torch pip).
// Differences, and what scorch does about them:
//  - the headers require C++20 (2.13+); scorch is C++20 for both LibTorch versions.
//  - autograd Node is a c10::intrusive_ptr_target in 2.15: impl::grad_accumulator returns an
//    intrusive_ptr, a shared_ptr before. GradReadyHook keeps either, type-erased.
//  - <torch>/include ships fmt 12, found before Debian's fmt 9 that spdlog needs: the build
//    searches Debian's first (CMakeLists.txt, SCORCH_FMT_FIRST); no version test in code.
//  - torch::linalg:: (torch/linalg.h) is gone from 2.15's C++ API: scorch calls the ATen ops
//    at::linalg_eigh/eigvalsh/eigvals/lstsq, present in every version.
//  - autocast (ATen/autocast_mode.h): is_enabled/set_enabled, is_cpu_enabled/...,
//    get/set_autocast_gpu_dtype/cpu_dtype became per-device-type functions
//    is_autocast_enabled(DeviceType), set_autocast_enabled, get/set_autocast_dtype in 2.4;
//    the old ones are deprecated wrappers that warn. AutocastGuard picks by version.
//    increment_nesting/decrement_nesting/clear_cache: unchanged.
//  - CUDACachingAllocator (c10/cuda/CUDACachingAllocator.h): DeviceStats, Stat and StatType
//    moved out of c10::cuda::CUDACachingAllocator into c10/core/CachingDeviceAllocator.h
//    (2.6; StatType later into c10::CachingAllocator), with only DeviceStats re-exported;
//    getDeviceStats takes c10::DeviceIndex since 2.3 (int before). cuda_peak_allocated uses
//    getDeviceStats(index).allocated_bytes[0] (0 = StatType::AGGREGATE in every version) and
//    names no moved type.
//  - TF32 (ATen/Context.h): setAllowTF32CuBLAS/setAllowTF32CuDNN kept; 2.9 adds
//    setFloat32Precision(backend, op, precision) beside them. set_tf32 uses the kept pair.
//  - The gradient-accumulated hook (torch/csrc/autograd/function.h): Node::add_post_hook
//    returning a uintptr_t key, del_post_hook(key), FunctionPostHook::operator()(outputs,
//    inputs) and impl::grad_accumulator are unchanged; 2.x adds
//    FunctionPostHook::compiled_args (compiled autograd only, has a default).
// Checked and unchanged from 1.13 to 2.x (no wrapper needed):
//  - at::make_generator<at::CPUGeneratorImpl>, at::detail::getDefaultCPUGenerator,
//    Context::defaultGenerator(Device), Generator::clone/set_current_seed/get_state/set_state;
//  - torch::jit::Pickler(writer, tensor_table, type_renamer, class_types, get_tensor_id,
//    tag_aggregates), protocol/pushIValue/stop/tensorData; torch::jit::writeArchiveAndTensors;
//    caffe2::serialize::PyTorchStreamWriter(writer_func) and writeEndOfFile,
//    PyTorchStreamReader(path), hasRecord, getRecord -> (DataPtr, size);
//  - torch::jit::load(path, device), jit::Module::define/register_parameter/save, IValue
//    toTuple/toTupleRef().elements(), c10::impl::GenericList/GenericDict, Tuple::create;
//  - c10::cuda::getStreamFromPool(bool isHighPriority, index) (2.x adds an int-priority
//    overload; scorch passes a bool), getCurrentCUDAStream, CUDAGuard, at::cuda::CUDAEvent
//    record/block/query, CUDACachingAllocator::recordStream(DataPtr, stream),
//    at::cuda::getDeviceProperties, torch::cuda::synchronize/is_available/device_count;
//  - at::detail::getCUDAHooks().versionCuDNN() and Context::hasCuDNN();
//  - ATen/record_function.h (the FLOP counter, core/flops.h): RecordFunctionCallback(start,
//    end), needsInputs, addThreadLocalCallback, removeCallback, RecordFunction::name() as
//    const char*, inputs() as ArrayRef<const IValue>.
// Build: PyTorch wheels since 2.7 use the C++11 ABI, like Debian's fmt, spdlog and Boost;
// older wheels (ABI 0) cannot link them (CMake stops with a message, see CMakeLists.txt).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace torch::autograd {
struct Node;
}

namespace scorch::compat {

// Enables autocast to `dtype` for `device`'s type in this thread while alive (forward
// passes only: backward runs outside it), and restores the previous state after.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, bool enabled, torch::ScalarType dtype = torch::kBFloat16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  torch::DeviceType type_;
  bool active_ = false;
  bool prev_enabled_ = false;
  torch::ScalarType prev_dtype_ = torch::kBFloat16;
};

// "1.13.0": the LibTorch this scorch was compiled against.
std::string torch_version();

// The CUDA version LibTorch was built with ("13.2"), or "none" (a CPU LibTorch).
std::string torch_cuda_version();

// The cuDNN version LibTorch was built with ("9.1.0"), or "none".
std::string cudnn_version();
// Peak bytes allocated by LibTorch's CUDA caching allocator on `device` since start (0 on
// a CPU build or a CPU device).
int64_t cuda_peak_allocated(const torch::Device& device);

// TF32 tensor-core math for float32 matmuls and convolutions (Ampere and later GPUs).
void set_tf32(bool enabled);

// Calls `fn` each time autograd has accumulated a gradient into `param.grad()` (so the
// gradient is complete for this backward pass). Remove with the returned handle's reset.
class GradReadyHook {
 public:
  GradReadyHook(const torch::Tensor& param, std::function<void()> fn);
  ~GradReadyHook();
  GradReadyHook(const GradReadyHook&) = delete;
  GradReadyHook& operator=(const GradReadyHook&) = delete;

 private:
  torch::autograd::Node* accumulator_ = nullptr;  // the parameter's AccumulateGrad node
  // Keeps it alive, as c10d's Reducer does: a std::shared_ptr<Node> before LibTorch 2.15,
  // a c10::intrusive_ptr<Node> since (Node became an intrusive_ptr_target).
  std::shared_ptr<void> owner_;
  uintptr_t key_ = 0;
};

}  // namespace scorch::compat
