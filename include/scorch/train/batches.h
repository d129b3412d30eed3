// What each training step consumes, prepared on the host ahead of time. The rows of step s
// are a fixed slice of the epoch's permutation (seeded by (seed, epoch)); the randomness of
// global row i of step s (diffusion time, Gaussian noise, flip, dequantisation noise,
// discrete level, label dropout, projection) is a counter-based Philox stream keyed by (seed, s) with counter i
// (core/random.h). So every row is bitwise the same at any world size and on any device,
// and each rank draws only the rows it owns: the per-rank cost is O(local batch), not
// O(global batch).
//
// Rows come from a data::Source (memory, node-shared or streamed: the same bytes in each).
// A Prefetcher thread makes the next batches (read, and on a CPU device also dequantise,
// flip and scale) while the current step computes; on a GPU the host tensors are pinned,
// the trainer's copies to the device are asynchronous and the uint8 rows become network
// input on the device (a quarter of the bytes to copy).
#pragma once
#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "scorch/core/config.h"
#include "scorch/data/dataset.h"
#include "scorch/data/source.h"
#include "scorch/dist/sharding.h"

namespace scorch::train {

// One step's rows of one rank, on the host.
struct HostBatch {
  torch::Tensor images;  // uint8 [b,H,W,C], or undefined for point data (or once x0 is made)
  torch::Tensor x0;      // float32 [b,C,H,W] network input made on the host (finish_on_host), or undefined
  torch::Tensor points;  // float32 [b,D], or undefined for image data
  torch::Tensor t;       // float32 [b], diffusion times in [eps, T)
  torch::Tensor z;       // float32 [b, ...item], N(0, I)
  torch::Tensor flip;    // bool [b] (image data)
  torch::Tensor deq;     // float32 [b,C,H,W] U[0,1) dequantisation noise, or undefined
  torch::Tensor levels;  // int64 [b] discrete noise levels (training.continuous = false), or undefined
  torch::Tensor labels;  // int64 [b] class labels (model.num_classes > 0; the null label after
                         // training.label_dropout), or undefined
  torch::Tensor projections;  // float32 [b, ...item] sliced-score-matching projections, or undefined
  int64_t size() const { return t.size(0); }
};

class BatchMaker {
 public:
  // `share`: the rows of each global batch that this rank owns. `pinned`: page-locked host
  // memory (for asynchronous copies to a GPU). `num_levels`: N of discrete training.
  // `projections`: draw the projection vectors of sliced score matching. `finish_on_host`:
  // image rows leave make() as network input x0 (dequantised, flipped, scaled), not uint8.
  BatchMaker(const Config& cfg, const data::Source& data, dist::Range share, bool pinned, double T, int64_t num_levels,
             bool projections = false, bool finish_on_host = false);
  // The batch of `step`. Thread-safe; a pure function of (cfg.seed, step, share).
  HostBatch make(int64_t step) const;
  int64_t steps_per_epoch() const { return steps_per_epoch_; }

 private:
  torch::Tensor permutation(int64_t epoch) const;

  const Config& cfg_;
  const data::Source& data_;
  dist::Range share_;
  bool pinned_;
  double T_;
  int64_t num_levels_;
  bool projections_;
  bool finish_on_host_;
  int64_t steps_per_epoch_;
  mutable std::mutex mu_;
  mutable int64_t cached_epoch_ = -1;
  mutable torch::Tensor cached_perm_;
};

// Runs `make(step)` for step = first, first+1, ... < end on a background thread, keeping at
// most `depth` batches ready. take(step) must be called in the same order. An exception in
// `make` reaches the caller of take(), never a stale batch.
class Prefetcher {
 public:
  Prefetcher(std::function<HostBatch(int64_t)> make, int64_t first, int64_t end, int64_t depth);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  HostBatch take(int64_t step);
  int64_t next_step() const { return next_take_; }

 private:
  void loop();
  std::function<HostBatch(int64_t)> make_;
  int64_t next_make_, next_take_, end_, depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<HostBatch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace scorch::train
