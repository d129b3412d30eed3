// Logging: spdlog with the rank in every line. Rank 0 speaks at info level; other ranks
// only warn, so a 64-rank job prints one progress stream, not 64.
#pragma once
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace scorch {

void init_logging(int rank, int world_size);

// "1h02m", "3m05s", "12s": durations for ETAs.
std::string format_duration(double seconds);
// "512 B", "86.4 kB", "393 MB", "5.9 GB": decimal units, three significant digits.
std::string format_bytes(double bytes);

// Logs "label: done/total | elapsed | ETA" about every 10% of `total` (info level: rank 0).
class Progress {
 public:
  Progress(std::string label, int64_t total);
  void tick(int64_t done);

 private:
  using clock = std::chrono::steady_clock;
  std::string label_;
  int64_t total_;
  clock::time_point t0_;
  int64_t last_decile_ = 0;
};

}  // namespace scorch
