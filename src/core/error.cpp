// Rank-stamped exceptions: the rank is a process-wide value set once MPI is initialised.
#include "scorch/core/error.h"

#include <cstring>

namespace scorch {

namespace {
int g_rank = -1;
}

void set_error_rank(int rank) { g_rank = rank; }
int error_rank() { return g_rank; }

void throw_error(const char* file, int line, const std::string& message) {
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  if (g_rank >= 0) {
    throw Error(fmt::format("[rank {}] {} ({}:{})", g_rank, message, base, line));
  }
  throw Error(fmt::format("{} ({}:{})", message, base, line));
}

}  // namespace scorch
