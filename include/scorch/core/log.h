// Logging: spdlog with the rank in every line. Rank 0 speaks at info level; other ranks
// only warn, so a 64-rank job prints one progress stream, not 64.
#pragma once
#include <spdlog/spdlog.h>

#include <string>

namespace scorch {

void init_logging(int rank, int world_size);

// "1h02m", "3m05s", "12s": durations for ETAs.
std::string format_duration(double seconds);

}  // namespace scorch
