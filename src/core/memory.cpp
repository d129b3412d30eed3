// glibc malloc tuning (see core/memory.h).
#include "scorch/core/memory.h"

#include <malloc.h>
#include <sys/resource.h>

#include <cstdlib>
#include <string>

namespace scorch {

std::string tune_malloc() {
  const char* env = std::getenv("SCORCH_MALLOC_TUNING");
  if (env != nullptr && std::string(env) == "0") return "malloc tuning off (SCORCH_MALLOC_TUNING=0)";
  // Blocks up to 32 MiB (glibc's largest mmap threshold on 64-bit) come from the heap, and
  // freed heap memory is neither trimmed nor given back below 1 GiB of slack.
  constexpr int kMmapThreshold = 32 * 1024 * 1024;
  constexpr int kTrimThreshold = 1024 * 1024 * 1024;
  constexpr int kTopPad = 64 * 1024 * 1024;
  const bool ok = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1 &&
                  mallopt(M_TOP_PAD, kTopPad) == 1;
  return ok ? "malloc: mmap threshold 32 MiB, trim threshold 1 GiB, top pad 64 MiB"
            : "malloc tuning: mallopt refused a setting (glibc defaults kept in part)";
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace scorch
