// Feature extraction at scale: the features (and logits) of n images, computed through the
// farm (farm/farm.h) as one file per batch under a cache directory, so that a killed run
// resumes and a finished one never needs the images again; then their FID moments, each
// rank summing a share of the batch files in float64 and the sums all-reduced.
#pragma once
#include <functional>
#include <string>

#include "scorch/dist/communicator.h"
#include "scorch/eval/feature_net.h"
#include "scorch/eval/metrics.h"
#include "scorch/farm/farm.h"

namespace scorch::eval {

// Images [begin, begin + count) by global index: float32 [count,C,H,W] in [0,1] (CPU).
using ImageReader = std::function<torch::Tensor(int64_t begin, int64_t count)>;

struct Features {
  farm::Plan plan;      // the batch files: /index, /features float32 [b,F], /logits float32 [b,K] if any
  farm::Report report;  // of the extraction
  Moments moments;      // over all n images (on every rank)
  int64_t dim = 0;      // F
  bool has_logits = false;
};

// Bytes the FID moments of F features take at their peak on the node of rank 0 with
// `ranks_on_node` ranks: one F x F float64 accumulator per rank plus about four on rank 0.
double moments_bytes(int64_t F, int64_t ranks_on_node);

// Collective. `dir` is the cache (created); `net.id()` is recorded in each batch file and a
// file made by another network is computed again. Before any batch, the features of image 0
// (or the cached first batch file) give F, and the moments' memory (moments_bytes) is checked
// against what this node has available: refused naming F, the estimate and what is there. A
// stop signal ends the moments' summation within one batch file (throws; the cached features
// stay).
Features compute_features(dist::Communicator& comm, FeatureNet& net, const torch::Device& device, int64_t n,
                          int64_t batch_size, const std::string& dir, const std::string& balance,
                          const ImageReader& read);

}  // namespace scorch::eval
