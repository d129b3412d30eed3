// Helpers of the end-to-end suites that drive the real `scorch` binary (cli, faults):
// running a shell command, the scorch command line for N ranks, and a small point job.
#pragma once
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common.h"
#include "scorch/farm/farm.h"
#include "scorch/io/hdf5.h"
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

// The newest sample run of `workdir` (the one whose manifest.json was written last), as its
// directory and its farm plan.
inline std::pair<std::string, farm::Plan> newest_sample_run(const std::string& workdir) {
  namespace fs = std::filesystem;
  std::string best;
  fs::file_time_type when{};
  for (const auto& e : fs::directory_iterator(workdir + "/samples")) {
    auto m = e.path() / "manifest.json";
    if (e.is_directory() && fs::exists(m) && (best.empty() || fs::last_write_time(m) > when)) {
      best = e.path().string();
      when = fs::last_write_time(m);
    }
  }
  BOOST_REQUIRE_MESSAGE(!best.empty(), "no sample run in " << workdir << "/samples");
  std::ifstream in(best + "/manifest.json");
  auto j = nlohmann::json::parse(in);
  farm::Plan plan;
  plan.dir = best;
  plan.num_items = j.at("num_samples").get<int64_t>();
  plan.batch_size = j.at("batch_size").get<int64_t>();
  return {best, plan};
}

// Dataset `name` ("samples" or "images") of the newest sample run of `workdir`, in index order.
inline torch::Tensor read_sample_run(const std::string& workdir, const std::string& name = "samples") {
  return farm::read_batches(newest_sample_run(workdir).second, name);
}

// Shell text that SIGKILLs every process of the session of `$pid` (a job started with
// setsid, as Slurm's step or jobs/launch.sh run one: Open MPI gives each rank a process group
// of its own, so a SIGKILL of mpirun's group leaves the ranks running, and holding their
// locks, for about a second), prints "rc=<status of $pid>" and waits until none is left.
inline std::string kill_session_and_wait() {
  return "pkill -9 -s $pid; wait $pid; echo rc=$?; "
         "for i in $(seq 200); do pgrep -s $pid > /dev/null || break; sleep 0.05; done";
}

// Rewrites the format attributes of a scorch file as an older scorch wrote them: `version`
// set to `version`, the attributes it did not have yet (e.g. "identity", "lineage") removed.
inline void as_older_version(const std::string& path, int64_t version, const std::vector<std::string>& absent) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  BOOST_REQUIRE_MESSAGE(f >= 0, "cannot open " << path);
  H5Adelete(f, "version");
  for (const auto& a : absent) H5Adelete(f, a.c_str());
  h5::set_attr(f, "version", version);
  H5Fclose(f);
}

inline std::string scorch_cmd(int ranks) {
  std::string bin = SCORCH_BIN;
  if (ranks <= 1) return bin;
  return std::string(SCORCH_MPIEXEC) + " -np " + std::to_string(ranks) + " --oversubscribe " + bin;
}

// The exact score of the 2-D mixture 0.3 N((-2,0), 0.5^2 I) + 0.7 N((2,1), 0.3^2 I): every
// sampler and the likelihood run on it without training (mean (0.8, 0.7)).
inline Config mixture_2d() {
  Config c;
  c.model.name = "analytic_gmm";
  c.model.gmm_means = {{-2.0, 0.0}, {2.0, 1.0}};
  c.model.gmm_stds = {0.5, 0.3};
  c.model.gmm_weights = {0.3, 0.7};
  c.data.dim = 2;
  return c;
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


// The fields of one CSV row (RFC 4180: quoted fields, doubled quotes).
inline std::vector<std::string> csv_fields(const std::string& row) {
  std::vector<std::string> out(1);
  bool in_quotes = false;
  for (size_t i = 0; i < row.size(); ++i) {
    const char ch = row[i];
    if (in_quotes && ch == '"' && i + 1 < row.size() && row[i + 1] == '"') {
      out.back() += '"';
      ++i;
    } else if (ch == '"') {
      in_quotes = !in_quotes;
    } else if (ch == ',' && !in_quotes) {
      out.emplace_back();
    } else {
      out.back() += ch;
    }
  }
  return out;
}

// What coreutils' sha256sum prints for `path` (64 hex digits).
inline std::string sha256sum(const std::string& path) {
  const auto r = run("sha256sum '" + path + "'", false);
  return r.out.substr(0, 64);
}

}  // namespace scorch::test
