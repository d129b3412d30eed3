// Helpers of the end-to-end suites that drive the real `scorch` binary (cli, faults):
// running a shell command, the scorch command line for N ranks, and a small point job.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "common.h"
#include "test_paths.h"

namespace scorch::test {

struct Run {
  int code;
  std::string out;
};

// Runs `cmd` through the shell; output is stdout and stderr merged, or stdout alone
// (mpirun forwards the two streams separately, so their interleaving is not fixed).
inline Run run(const std::string& cmd, bool with_stderr = true) {
  std::string full = cmd + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(full.c_str(), "r");
  BOOST_REQUIRE(p);
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = pclose(p);
  BOOST_TEST_MESSAGE("$ " << cmd << "\n" << out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline std::string scorch_cmd(int ranks) {
  std::string bin = SCORCH_BIN;
  if (ranks <= 1) return bin;
  return std::string(SCORCH_MPIEXEC) + " -np " + std::to_string(ranks) + " --oversubscribe " + bin;
}

inline std::string points_job(const test::TempDir& d) {
  test::tiny_point_config(d / "pts.h5", 512);
  test::write_file(d / "job.toml", fmt::format(R"(
[training]
batch_size = 32
n_iters = 30
snapshot_freq = 20
log_freq = 10
[model]
name = "mlp"
nf = 32
num_res_blocks = 2
dropout = 0.0
num_scales = 40
ema_rate = 0.9
[optim]
lr = 2e-3
warmup = 0
[data]
dim = 2
path = "{}"
[eval]
batch_size = 16
num_samples = 40
bpd_num_images = 24
bpd_num_repeats = 2
rtol = 1e-4
atol = 1e-4
)",
                                               d / "pts.h5"));
  return d / "job.toml";
}


}  // namespace scorch::test
