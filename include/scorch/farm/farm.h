// The farm: long runs of independent work over global item indices [0, n) — sampling,
// bits/dim, encoding, feature statistics — spread over every rank and resumable.
//
// The unit of work is a batch: a fixed range of global indices [id * batch_size, ...), so
// that what a batch produces depends only on its id, never on the world size, the rank
// that took it or how often the job restarted. Each batch is written by the rank that
// computed it as one file of its own, atomically (io/files.h), under `Plan::dir`; a batch
// whose file is already there and complete is skipped, so a rerun after a crash, kill -9
// or pre-emption does only what is missing. Nothing is gathered: no rank ever holds more
// than the batch it works on.
//
// Dealing: every rank first takes a static share of the pending batches (contiguous, half
// of them in all), then claims the rest one at a time from a counter on rank 0
// (dist::SharedCounter, one-sided MPI), so a rank whose batches are cheap (ODE batches
// differ in NFE) takes more of them. `balance = "static"` deals everything up front instead.
// A stop signal (core/stop.h) lets the current batch finish and claims no more; the run then
// reports `stopped` (and the command exits with kStoppedExitCode) unless nothing was left.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "scorch/dist/communicator.h"
#include "scorch/io/hdf5.h"

namespace scorch::farm {

struct Batch {
  int64_t id = 0;
  int64_t begin = 0;  // first global index
  int64_t count = 0;  // items: batch_size, or fewer in the last batch
  std::string path;   // where its file goes
  // Its global indices begin, ..., begin + count - 1.
  std::vector<int64_t> indices() const {
    std::vector<int64_t> v(static_cast<size_t>(count));
    for (int64_t r = 0; r < count; ++r) v[static_cast<size_t>(r)] = begin + r;
    return v;
  }
};

struct Plan {
  std::string dir;                  // the batch files: <dir>/batch_<id, 6 digits>.h5
  int64_t num_items = 0;
  int64_t batch_size = 0;
  std::string balance = "dynamic";  // dynamic | static
  std::string what = "items";       // for the log and progress ("samples", "images")
};

// What one batch reports back (for the summary).
struct Outcome {
  int64_t nfe = 0;  // score evaluations per item of the batch
};

struct Report {
  int64_t batches = 0;         // in the plan
  int64_t skipped = 0;         // found complete at the start
  int64_t done = 0;            // computed in this run (all ranks)
  std::vector<int64_t> per_rank;  // batches computed by each rank in this run
  int64_t items_done = 0;      // items computed in this run
  double seconds = 0;          // wall time of the dealing loop (slowest rank)
  double nfe_mean = 0;         // over the items computed in this run (0 if none)
  int64_t nfe_min = 0, nfe_max = 0;
  bool stopped = false;        // a stop signal left batches undone
  bool complete() const { return skipped + done == batches; }
  double items_per_s() const { return seconds > 0 ? static_cast<double>(items_done) / seconds : 0; }
  // "42 batches (10 already done), 32 computed in 12.3 s: 166.0 samples/s, NFE 1000 (min 1000,
  // max 1000); batches per rank 16 16"
  std::string summary(const std::string& what) const;
  // "stopped by a signal: 12 of 40 batches done in DIR; run the same command to finish"
  std::string stopped_message(const std::string& dir) const;
};

std::vector<Batch> batches(const Plan& plan);
std::string batch_path(const std::string& dir, int64_t id);

// Whether `b.path` is a finished batch file: /index int64 [b.count] holding b.begin, ...,
// and (when `attr` is not empty) a string attribute `attr` equal to `value` (the settings
// the batch was made with), every dataset reading back with its checksum. A file that
// cannot be read, or whose data fail their checksums, counts as unfinished (logged).
bool batch_file_complete(const Batch& b, const std::string& attr = "", const std::string& value = "");
// Writes b's file atomically: /index int64 (b.begin, ..., b.begin + b.count - 1), the string
// attribute `attr` = `value` (what batch_file_complete checks) and what `fill(file)` adds.
void write_batch(const Batch& b, const std::string& attr, const std::string& value,
                 const std::function<void(hid_t file)>& fill);
// Dataset `name` of the plan's batch files in index order, concatenated: at most `limit`
// rows (< 0: all). For grids, tests and small runs; throws naming a missing batch file.
torch::Tensor read_batches(const Plan& plan, const std::string& name, int64_t limit = -1);

// Concatenates datasets `names` of the plan's batch files, in index order, into one file
// `path` (written atomically), one batch at a time: memory holds one batch, whatever the
// plan's size. `extra(file)` adds attributes. Call on one rank.
void assemble(const Plan& plan, const std::string& path, const std::vector<std::string>& names,
              const std::function<void(hid_t file)>& extra);

// Runs `work` on every batch not already `complete` (called on batches' files, by several
// ranks in parallel: each checks a share and the answers are combined). `work` must write
// the batch's file atomically at `Batch::path`. Collective: every rank calls it with the
// same plan. Rank 0 first removes temporaries that killed runs left in `dir`.
Report run(dist::Communicator& comm, const Plan& plan, const std::function<bool(const Batch&)>& complete,
           const std::function<Outcome(const Batch&)>& work);

}  // namespace scorch::farm
