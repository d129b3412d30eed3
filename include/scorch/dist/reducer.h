// Gradient averaging over ranks the way PyTorch's DDP does it (c10d's Reducer), separate
// from the collective backend. The trainable parameters are grouped into buckets of about
// `bucket_mb` (the first one about `first_bucket_mb`, so that communication starts early)
// in reverse registration order, the order in which backward produces their gradients.
// Each bucket is one flat buffer and each parameter's .grad() is a view into it, so
// autograd accumulates straight into the buffer. A hook on each parameter's gradient
// accumulator marks it ready; when a bucket is complete, and every bucket before it has
// been launched, its all-reduce is launched asynchronously (buckets always go in the same
// order on every rank). finish() launches what is left, waits for everything and divides by
// the world size.
//
// Parameters that receive no gradient (NCSN++ with conditional = false registers Dense_0
// layers that never see one) are found in the first step: their bucket is launched by
// finish() with zeros for them, and the ranks agree on the set with one small all-reduce.
// From then on those parameters are not waited for (a bucket holding only such parameters
// is not communicated at all) and their .grad() is left undefined after finish(), as
// PyTorch leaves an unused parameter's grad None. A parameter of that set that later gets
// a gradient is an error naming it (the reducer assumes every step uses the same
// parameters), never a hang or a silently dropped gradient.
//
// Micro-batches (gradient accumulation): set_sync(false) before the backward passes that
// only accumulate, set_sync(true) before the last one. With overlap off the hooks do
// nothing and finish() launches every bucket after backward (for comparison).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "scorch/dist/communicator.h"

namespace scorch::compat {
class GradReadyHook;
}

namespace scorch::dist {

struct ReducerOptions {
  double bucket_mb = 25.0;       // bucket size after the first (MiB of gradient)
  double first_bucket_mb = 1.0;  // size of the first bucket
  bool overlap = true;           // launch all-reduces from the gradient hooks
};

class Reducer {
 public:
  // `params`: (name, parameter) of the trainable parameters in registration order, all on
  // one device with one floating dtype, each dense (contiguous or channels-last).
  Reducer(std::vector<std::pair<std::string, torch::Tensor>> params, Communicator& comm, ReducerOptions opt);
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Start of a step: zeroes every bucket and points each parameter's grad at its view.
  void zero_grad();
  // Whether the next backward pass launches all-reduces (last micro-batch) or only accumulates.
  void set_sync(bool sync) { sync_ = sync; }
  // After the last backward pass of the step: launches the remaining buckets, waits for all
  // of them and divides by the world size.
  void finish();

  struct Bucket {
    torch::Tensor flat;            // [numel] the gradients of the bucket's parameters
    std::vector<size_t> params;    // indices into the parameter list, in bucket order
    int64_t expected = 0;          // parameters to wait for (all but the unused ones)
    int64_t pending = 0;           // of those, not yet ready in this step
    WorkPtr work;                  // launched all-reduce, or null
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Buckets the hooks launched during the last backward pass (0 with overlap off).
  int64_t launched_in_backward() const { return launched_in_backward_; }
  // Names of the parameters no rank gave a gradient in the first step.
  std::vector<std::string> unused_parameters() const;

 private:
  void on_ready(size_t param);
  void launch_in_order();  // launches ready buckets from next_launch_ on (mu_ held)

  std::vector<std::pair<std::string, torch::Tensor>> params_;
  Communicator& comm_;
  ReducerOptions opt_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;       // param -> bucket
  std::vector<torch::Tensor> views_;    // param -> its view into the bucket
  std::vector<char> ready_;             // param -> ready in this step's synchronising pass
  std::vector<char> used_;              // param -> got a gradient in any pass of this step
  std::vector<char> unused_;            // param -> no rank used it in the first step
  bool first_step_ = true;
  bool sync_ = true;
  size_t next_launch_ = 0;
  int64_t launched_in_backward_ = 0;
  bool in_finish_ = false;
  std::mutex mu_;
  std::vector<std::unique_ptr<compat::GradReadyHook>> hooks_;
};

}  // namespace scorch::dist
