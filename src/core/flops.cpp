// FLOPs of convolutions and matrix products from their argument shapes (see core/flops.h).
#include "scorch/core/flops.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

#include "scorch/core/error.h"

namespace scorch {

namespace {

thread_local FlopCounter* t_counter = nullptr;

std::vector<int64_t> int_list(const c10::IValue& v, const char* what) {
  SCORCH_CHECK(v.isIntList(), "FlopCounter: aten::convolution's {} is not an int list ({})", what, v.tagKind());
  return v.toIntVector();
}

std::vector<int64_t> sizes_of(const c10::IValue& v) {
  if (!v.isTensor() || !v.toTensor().defined()) return {};
  return v.toTensor().sizes().vec();
}

int64_t product(const std::vector<int64_t>& v, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < v.size(); ++i) p *= v[i];
  return p;
}

// aten::convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
int64_t convolution_flops(c10::ArrayRef<const c10::IValue> in) {
  if (in.size() < 9) return 0;
  const auto x = sizes_of(in[0]), w = sizes_of(in[1]);
  if (x.size() < 3 || w.size() != x.size()) return 0;
  const auto stride = int_list(in[3], "stride"), padding = int_list(in[4], "padding"),
             dilation = int_list(in[5], "dilation");
  const bool transposed = in[6].toBool();
  const size_t nd = x.size() - 2;
  auto at = [](const std::vector<int64_t>& v, size_t i) { return v.size() == 1 ? v[0] : v.at(i); };
  const int64_t kernel = product(w, 2);
  if (transposed) {
    // weight [Cin, Cout/groups, k...]: every input element is spread over Cout/groups x kernel outputs.
    return 2 * x[0] * x[1] * product(x, 2) * w[1] * kernel;
  }
  int64_t out = 1;
  for (size_t d = 0; d < nd; ++d)
    out *= (x[2 + d] + 2 * at(padding, d) - at(dilation, d) * (w[2 + d] - 1) - 1) / at(stride, d) + 1;
  // weight [Cout, Cin/groups, k...]: each output element takes Cin/groups x kernel products.
  return 2 * x[0] * w[0] * out * w[1] * kernel;
}

// a [..., n, k] @ b [..., k, m]: 2 n k m per batch element.
int64_t matmul_flops(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() < 2 || b.size() < 2) return 0;
  return 2 * product(a) * b.back();
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  FlopCounter* c = t_counter;
  if (c == nullptr) return nullptr;
  const std::string name = fn.name();
  const auto in = fn.inputs();
  if (name == "aten::convolution") {
    c->add(name, convolution_flops(in));
  } else if ((name == "aten::mm" || name == "aten::bmm") && in.size() >= 2) {
    c->add(name, matmul_flops(sizes_of(in[0]), sizes_of(in[1])));
  } else if ((name == "aten::addmm" || name == "aten::baddbmm") && in.size() >= 3) {
    c->add(name, matmul_flops(sizes_of(in[1]), sizes_of(in[2])));
  }
  return nullptr;
}

}  // namespace

FlopCounter::FlopCounter() {
  SCORCH_CHECK(t_counter == nullptr, "FlopCounter: one counter per thread at a time");
  t_counter = this;
  handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&on_start).needsInputs(true));
}

FlopCounter::~FlopCounter() {
  at::removeCallback(handle_);
  t_counter = nullptr;
}

int64_t FlopCounter::total() const {
  int64_t t = 0;
  for (const auto& [op, f] : by_op_) t += f;
  return t;
}

void FlopCounter::add(const std::string& op, int64_t flops) { by_op_[op] += flops; }

}  // namespace scorch
