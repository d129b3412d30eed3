// Host name and local time (see core/host.h).
#include "scorch/core/host.h"

#include <chrono>

#include <unistd.h>

#include <ctime>

namespace scorch {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown-host";
  return buf;
}

std::string local_time_iso8601() {
  const auto now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char when[64];
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", &tm);
  return when;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace scorch
