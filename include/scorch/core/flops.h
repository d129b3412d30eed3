// Counting the floating-point operations of a forward pass from the shapes of the layers it
// runs, the way PyTorch's profiler does with with_flops (torch/csrc/profiler/util.cpp,
// computeFlops): ATen calls every RecordFunction callback of this thread with each operator
// and its arguments, and the counter adds 2 FLOPs per multiply-add of
//   aten::convolution (plain, grouped, transposed; any dimension), aten::mm, aten::addmm,
//   aten::bmm and aten::baddbmm (linear layers and attention end in these).
// Element-wise work (normalisation, activations, additions) is not counted: in a U-Net it is
// under 1% of the total, and model FLOPs utilisation is conventionally taken over matrix work.
// The ops are counted where they are dispatched, whatever the device, dtype or autocast.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace scorch {

// Counts while alive, on the constructing thread only (one counter per thread at a time).
class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  // FLOPs so far (2 per multiply-add), in total and by operator name ("aten::convolution").
  int64_t total() const;
  const std::map<std::string, int64_t>& by_op() const { return by_op_; }

  // Used by the callback.
  void add(const std::string& op, int64_t flops);

 private:
  std::map<std::string, int64_t> by_op_;
  uint64_t handle_ = 0;
};

}  // namespace scorch
