// glibc malloc tuning, peak RSS and available memory (see core/memory.h).
#include "scorch/core/memory.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
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

double available_memory() {
  double avail = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  std::ifstream mi("/proc/meminfo");
  std::string key, unit;
  double kb = 0;
  while (mi >> key >> kb) {
    std::getline(mi, unit);
    if (key == "MemAvailable:") avail = kb * 1024.0;
  }
  // The memory cgroup this process is in (a Slurm job's, a node's): its limit less its
  // usage. /proc/self/cgroup has "0::/path" for cgroup v2 and "N:memory:/path" for v1.
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    std::string limit_file, usage_file;
    if (controllers.empty()) {
      limit_file = "/sys/fs/cgroup" + path + "/memory.max";
      usage_file = "/sys/fs/cgroup" + path + "/memory.current";
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      limit_file = "/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes";
      usage_file = "/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes";
    } else {
      continue;
    }
    std::ifstream lf(limit_file), uf(usage_file);
    std::string limit;
    double usage = 0;
    // v1 writes "no limit" as a number near 2^63; v2 as "max".
    if (lf >> limit && limit != "max" && std::stod(limit) < 1e18) {
      if (!(uf >> usage)) usage = 0;
      // Usage counts the page cache; its inactive part is reclaimed before anything fails
      // (as MemAvailable counts it available): the working set is what is taken.
      std::ifstream st(limit_file.substr(0, limit_file.rfind('/')) + "/memory.stat");
      std::string k;
      double v = 0;
      while (st >> k >> v) {
        if (k == (controllers.empty() ? "inactive_file" : "total_inactive_file")) usage = std::max(0.0, usage - v);
      }
      avail = std::min(avail, std::max(0.0, std::stod(limit) - usage));
    }
  }
  return avail;
}

}  // namespace scorch
