// spdlog set-up and small formatting helpers shared by every long-running command.
#include "scorch/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cmath>

namespace scorch {

void init_logging(int rank, int world_size) {
  auto logger = spdlog::stderr_color_mt(fmt::format("rank{}", rank));
  logger->set_pattern(world_size > 1 ? fmt::format("[%H:%M:%S] [rank {}] %^%l%$ %v", rank) : "[%H:%M:%S] %^%l%$ %v");
  logger->set_level(rank == 0 ? spdlog::level::info : spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto total = static_cast<long long>(std::llround(s));
  long long h = total / 3600, m = (total % 3600) / 60, sec = total % 60;
  if (h > 0) return fmt::format("{}h{:02d}m", h, m);
  if (m > 0) return fmt::format("{}m{:02d}s", m, sec);
  return fmt::format("{}s", sec);
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (std::abs(b) >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.3g} {}", b, units[u]);
}

Progress::Progress(std::string label, int64_t total) : label_(std::move(label)), total_(total), t0_(clock::now()) {}

void Progress::tick(int64_t done) {
  if (done * 10 / total_ == last_decile_ && done != total_) return;
  last_decile_ = done * 10 / total_;
  double el = std::chrono::duration<double>(clock::now() - t0_).count();
  spdlog::info("{}: {}/{} | {} elapsed | ETA {}", label_, done, total_, format_duration(el),
               format_duration(el / static_cast<double>(done) * static_cast<double>(total_ - done)));
}

}  // namespace scorch
