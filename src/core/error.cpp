// Rank-stamped exceptions: the rank is a process-wide value set once MPI is initialised.
#include "scorch/core/error.h"

#include <c10/util/Exception.h>

#include <climits>
#include <cstring>
#include <filesystem>

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

std::string shown_path(const std::string& p) {
  if (p.size() <= 160) return "'" + p + "'";
  return fmt::format("'{}...{}' ({} characters; Linux allows {} in a path and {} in one name)", p.substr(0, 60),
                     p.substr(p.size() - 60), p.size(), PATH_MAX, NAME_MAX);
}

std::string message_of(const std::exception& e) {
  if (const auto* fe = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    // "filesystem error: cannot create directories: File name too long [p]" -> the operation,
    // the reason and the path, without libstdc++'s prefix.
    std::string what = fe->what();
    const std::string prefix = "filesystem error: ";
    if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());
    const auto reason = fe->code().message();
    const auto at = what.find(": " + reason);
    std::string op = at == std::string::npos ? std::string("file system operation") : what.substr(0, at);
    std::string msg = fmt::format("{}: {}", op, reason);
    if (!fe->path1().empty()) msg += ": " + shown_path(fe->path1().string());
    if (!fe->path2().empty()) msg += " -> " + shown_path(fe->path2().string());
    return msg;
  }
  const auto* c10e = dynamic_cast<const c10::Error*>(&e);
  std::string msg = c10e ? c10e->what_without_backtrace() : e.what();
  // Some LibTorch errors (TorchScript's loader) embed the dump in the message itself.
  for (const char* marker : {"\nException raised from", "\nframe #0"}) {
    const auto at = msg.find(marker);
    if (at != std::string::npos) msg.resize(at);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

int64_t checked_mul(int64_t a, int64_t b, const std::string& what, int64_t limit) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out) || out < 0) {
    throw_error(__FILE__, __LINE__,
                fmt::format("{}: the product does not fit in a 64-bit integer; nothing was computed", what));
  }
  if (out > limit) {
    throw_error(__FILE__, __LINE__, fmt::format("{} = {}: more than {}; nothing was computed", what, out, limit));
  }
  return out;
}

}  // namespace scorch
