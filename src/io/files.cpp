// Exclusive temporaries, durable renames and the workdir lock (see io/files.h).
#include "scorch/io/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "scorch/core/error.h"
#include "scorch/core/host.h"

namespace fs = std::filesystem;

namespace scorch::io {

namespace {

std::string errno_text(int e) { return fmt::format("{} (errno {})", std::strerror(e), e); }

void fsync_dir(const fs::path& dir) {
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_small(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string unique_temp_path(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return fmt::format("{}.tmp.{}.{}.{}", path, host_name(), ::getpid(), counter++);
}

bool is_temp_name(const std::string& filename) {
  static const std::regex re(R"(.+\.tmp(\.[^/]+\.\d+\.\d+)?)");
  return std::regex_match(filename, re);
}

int create_exclusive(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;
    SCORCH_THROW("cannot create '{}': {}{}", path, errno_text(e),
                 e == EEXIST ? " (something, possibly a symlink, is already there: scorch never writes through it)"
                             : "");
  }
  return fd;
}

void commit_file(const std::string& tmp, const std::string& final_path) {
  int fd = ::open(tmp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  SCORCH_CHECK(fd >= 0, "cannot reopen '{}' to sync it: {}", tmp, errno_text(errno));
  int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  SCORCH_CHECK(rc == 0, "fsync of '{}' failed: {}", tmp, errno_text(e));
  // rename(2) replaces a symlink at final_path with the file; it never writes through it.
  SCORCH_CHECK(::rename(tmp.c_str(), final_path.c_str()) == 0, "cannot rename '{}' to '{}': {}", tmp, final_path,
               errno_text(errno));
  fsync_dir(fs::path(final_path).parent_path());
}

void write_file_atomically(const std::string& path, const std::function<void(const std::string&)>& fill,
                           const std::function<void(const std::string&)>& verify) {
  auto parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    SCORCH_CHECK(!ec, "cannot create folder '{}' for '{}': {}", parent.string(), path, ec.message());
  }
  const std::string tmp = unique_temp_path(path);
  ::close(create_exclusive(tmp));  // ours alone from here on; only we ever remove it
  try {
    fill(tmp);
    if (verify) verify(tmp);
    // Test hook: SCORCH_TEST_PAUSE_BEFORE_COMMIT_S=x holds a filled checkpoint temporary for x
    // seconds before the rename, so that fault tests can kill a process in the middle of a write.
    static const char* pause = std::getenv("SCORCH_TEST_PAUSE_BEFORE_COMMIT_S");
    if (pause && path.find("/checkpoints/") != std::string::npos) {
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(pause)));
    }
    commit_file(tmp, path);
  } catch (const std::exception& e) {
    ::unlink(tmp.c_str());
    std::string inner = e.what();
    if (inner.rfind("[rank ", 0) == 0 && inner.find("] ") != std::string::npos) inner = inner.substr(inner.find("] ") + 2);
    SCORCH_THROW("writing '{}' failed; nothing was replaced: {}", path, inner);
  }
}

void write_bytes(const std::string& path, const char* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
  SCORCH_CHECK(fd >= 0, "cannot open '{}': {}", path, errno_text(errno));
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, std::min<size_t>(size - done, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : ENOSPC;
      ::close(fd);
      SCORCH_THROW("cannot write '{}' ({} of {} bytes written): {}", path, done, size, errno_text(e));
    }
    done += static_cast<size_t>(n);
  }
  SCORCH_CHECK(::close(fd) == 0, "cannot write '{}': {}", path, errno_text(errno));
}

void write_text_atomically(const std::string& path, const std::string& content) {
  write_file_atomically(
      path, [&](const std::string& tmp) { write_bytes(tmp, content.data(), content.size()); },
      [&](const std::string& tmp) {
        SCORCH_CHECK(read_small(tmp) == content, "'{}' does not read back as written", tmp);
      });
}

int remove_stale_temps(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_symlink() && !e.is_regular_file()) continue;
    if (is_temp_name(e.path().filename().string())) {
      fs::remove(e.path(), ec);
      if (!ec) ++n;
    }
  }
  return n;
}

bool lock_is_held(const std::string& dir) {
  const int fd = ::open((dir + "/.lock").c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // drops the probe's own shared lock, if it got one
  return held;
}

void require_writable_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  SCORCH_CHECK(!ec, "{} {} cannot be created: {}", what, shown_path(dir), ec.message());
  const std::string probe = fmt::format("{}/.scorch-write-probe.{}", dir, ::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  SCORCH_CHECK(fd >= 0, "{} {} is not writable: {} (nothing was computed)", what, shown_path(dir), errno_text(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

WorkdirLock::WorkdirLock(const std::string& workdir, const std::string& what, const std::string& noun,
                         const std::string& why)
    : path_(workdir + "/.lock") {
  std::error_code ec;
  fs::create_directories(workdir, ec);
  SCORCH_CHECK(!ec, "cannot create workdir '{}': {}", workdir, ec.message());
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  SCORCH_CHECK(fd_ >= 0, "cannot open the workdir lock '{}': {}", path_, errno_text(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    std::string holder = read_small(path_);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK) {
      SCORCH_THROW("{} '{}' is in use by another scorch process ({}): {}. Wait for it to end or stop it; the lock "
                   "({}) is released when it exits",
                   noun, workdir, holder.empty() ? "holder unknown" : holder, why, path_);
    }
    SCORCH_THROW("cannot lock '{}': {}", path_, errno_text(e));
  }
  std::string before = read_small(path_);
  while (!before.empty() && before.back() == '\n') before.pop_back();
  const std::string me =
      fmt::format("{} on host {}, pid {}, since {}\n", what, host_name(), ::getpid(), local_time_iso8601());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    SCORCH_THROW("cannot write the workdir lock '{}': {}", path_, errno_text(e));
  }
  stale_ = before;
}

WorkdirLock::~WorkdirLock() {
  if (fd_ >= 0) {
    (void)!::ftruncate(fd_, 0);  // a clean exit leaves no holder behind
    ::close(fd_);                // releases the flock
  }
}

}  // namespace scorch::io
