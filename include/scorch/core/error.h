// Errors that say where they came from. Every scorch exception carries the source file,
// line and MPI rank, so that a failure on rank 17 of 64 is not anonymous in a Slurm log.
// Library code throws; only `main` catches, prints and aborts the communicator.
#pragma once
#include <fmt/format.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace scorch {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The rank stamped on errors thrown from this process (set once MPI is up; -1 before).
void set_error_rank(int rank);
int error_rank();

[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

// The message of `e` without LibTorch's C++ stack dump (c10::Error carries one): what a user
// reads in an error that wraps a library failure.
std::string message_of(const std::exception& e);
// A path quoted for a message; one over 160 characters (a 6 kB --workdir) shown by its ends,
// its length and Linux's limits.
std::string shown_path(const std::string& path);

// a * b for sizes computed from user input: throws naming `what` (e.g. "eval.num_samples = 4
// x eval.seed_sets = 2") when the product does not fit in 63 bits or exceeds `limit`.
int64_t checked_mul(int64_t a, int64_t b, const std::string& what, int64_t limit = INT64_MAX);

}  // namespace scorch

// SCORCH_THROW("bad value {} for {}", v, key): throws scorch::Error "[rank r] ... (file.cpp:42)".
#define SCORCH_THROW(...) ::scorch::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
#define SCORCH_CHECK(cond, ...)  \
  do {                           \
    if (!(cond)) {               \
      SCORCH_THROW(__VA_ARGS__); \
    }                            \
  } while (0)
