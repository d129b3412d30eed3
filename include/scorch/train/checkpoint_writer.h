// Checkpoints written in the background. The trainer copies its state to host memory at a
// step boundary (the only stall) and hands it over; one writer thread commits the file
// (io/checkpoint.h: exclusive temporary, checked closes, read back, fsync, rename), logs
// "checkpoint written" only then, and prunes old checkpoints (checkpoint.keep). There is
// never more than one write at a time: a new request waits for the one in flight (logged).
// A failed write (disk full, unwritable folder) is re-thrown on the training thread at the
// next step, naming the path; the previous checkpoints stay intact. With async = false the
// same code runs inline, so both modes write the same bytes.
#pragma once
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "scorch/io/checkpoint.h"

namespace scorch::train {

struct CheckpointStats {
  int64_t writes = 0;
  double last_write_s = 0;   // commit time of the last file (background)
  double total_write_s = 0;
  double total_wait_s = 0;   // time the training thread waited for a write in flight
  int64_t last_bytes = 0;
};

class CheckpointWriter {
 public:
  CheckpointWriter(std::string workdir, int64_t keep, int64_t keep_every, bool async);
  ~CheckpointWriter();  // finishes the write in flight (errors are logged, not thrown)
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Writes `st` (host tensors the caller no longer touches) to `path`: returns at once when
  // asynchronous, after the commit otherwise. Re-throws an earlier failure first.
  void submit(io::TrainState st, const std::string& path);
  // Waits until nothing is in flight; re-throws a failure of the last write.
  void wait();
  // Re-throws a failure of a finished background write (cheap: call every step).
  void rethrow_if_failed();
  CheckpointStats stats() const;

 private:
  void write(const io::TrainState& st, const std::string& path);
  void rethrow_locked();  // re-throws (and clears) a failed write's error; mu_ held
  void loop();

  std::string workdir_;
  int64_t keep_, keep_every_;
  bool async_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::pair<io::TrainState, std::string>> job_;
  bool busy_ = false, quit_ = false;
  std::exception_ptr error_;
  CheckpointStats stats_;
  std::thread thread_;
};

}  // namespace scorch::train
