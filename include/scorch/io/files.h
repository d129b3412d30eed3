// Durable, race-free file writes and the workdir lock. Every file scorch writes goes through
// a temporary of its own (a unique name created exclusively, never through a symlink), is
// checked, fsynced and renamed into place, so a crash, a full disk or a second process
// never leaves a half-written file under the final name and never clobbers another
// process's temporary or a symlink's target.
#pragma once
#include <functional>
#include <string>

namespace scorch::io {

// "<path>.tmp.<host>.<pid>.<n>": a name no other process or call of this one uses.
std::string unique_temp_path(const std::string& path);
// True for the names unique_temp_path gives (and the older "<path>.tmp").
bool is_temp_name(const std::string& filename);

// Creates `path` exclusively (O_CREAT|O_EXCL|O_NOFOLLOW: fails if anything, a symlink
// included, is there) and returns its open descriptor; throws naming the path and errno.
int create_exclusive(const std::string& path);

// fsyncs `tmp`, renames it to `final_path` (replacing it) and fsyncs the folder.
void commit_file(const std::string& tmp, const std::string& final_path);

// Writes `path` through a fresh temporary: `fill(tmp)` writes it, `verify(tmp)` (if given)
// reads it back, then it is committed. On any failure only this call's temporary is
// removed and `path` is untouched; the error names `path`.
void write_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& fill,
                           const std::function<void(const std::string& tmp)>& verify = {});
// Writes `size` bytes to the existing file `path` (truncating it; never through a symlink),
// checking every write(2) and the close: throws naming `path` and errno (ENOSPC, EIO).
void write_bytes(const std::string& path, const char* data, size_t size);
// Text content, written and read back byte for byte.
void write_text_atomically(const std::string& path, const std::string& content);

// Creates `dir` if missing and proves it writable by creating and removing a probe file in
// it (a read-only mount, missing permission, a full inode table): throws naming `dir`,
// `what` it is for and the reason, before any expensive work starts.
void require_writable_dir(const std::string& dir, const std::string& what);

// Whether a live process holds <dir>/.lock (a WorkdirLock) now: a shared, non-blocking
// flock probe that never waits and takes nothing.
bool lock_is_held(const std::string& dir);

// Removes leftover temporaries of earlier runs in `dir` (call only while holding the
// workdir lock). Returns how many were removed.
int remove_stale_temps(const std::string& dir);

// An exclusive lock on a workdir: "<workdir>/.lock" holds host, pid and start time, and a
// flock() on it is held for the life of the object. The kernel drops the flock when the
// process dies (kill -9, node reboot), so a lock left by a dead run is stale and taken
// over; a live holder makes the constructor throw naming its host and pid. `what` names the
// holder in the file ("scorch train (4 ranks)"); `noun` and `why` word the refusal.
class WorkdirLock {
 public:
  explicit WorkdirLock(const std::string& workdir, const std::string& what, const std::string& noun = "workdir",
                       const std::string& why = "two runs would overwrite each other's checkpoints");
  ~WorkdirLock();
  WorkdirLock(const WorkdirLock&) = delete;
  WorkdirLock& operator=(const WorkdirLock&) = delete;
  const std::string& path() const { return path_; }
  // What the lock file said when this process took it over from a dead holder ("" if free).
  const std::string& stale_holder() const { return stale_; }

 private:
  std::string path_;
  std::string stale_;
  int fd_ = -1;
};

}  // namespace scorch::io
