// Helpers of the fault suites (cli/test_faults.cpp, cli/test_faults_resume.cpp): the train
// command line, waiting for logged rows, checking that every checkpoint loads, temporaries
// left in a folder, a run's status.json state, and NaN planted into a checkpoint.
#pragma once
#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <map>
#include <cstring>

#include "cli/cli_common.h"
#include "common.h"
#include "scorch/io/checkpoint.h"
#include "scorch/io/files.h"
#include "scorch/io/hdf5.h"
#include "scorch/io/tensorboard.h"
#include "scorch/train/trainer.h"


namespace scorch::test::fault_helpers {

namespace fs = std::filesystem;

inline std::string train_cmd(int ranks, const std::string& job, const std::string& workdir, const std::string& sets = "") {
  return scorch_cmd(ranks) + " train --config " + job + " --workdir " + workdir + " " + sets;
}

// Shell fragment: waits until <w>/train_log.csv has at least `rows` data rows.
inline std::string wait_for_rows(const std::string& w, int rows) {
  return fmt::format("for i in $(seq 900); do [ -s {0}/train_log.csv ] && [ $(wc -l < {0}/train_log.csv) -gt {1} ] "
                     "&& break; sleep 0.1; done; ",
                     w, rows);
}

// Every checkpoint file in <w>/checkpoints loads and verifies; returns how many there are.
inline int all_checkpoints_load(const std::string& w) {
  int n = 0;
  for (const auto& [step, path] : io::list_checkpoints(w)) {
    auto msg = test::error_of([&] {
      auto st = io::load_checkpoint(path);
      BOOST_TEST(io::first_nonfinite(st).empty(), path);
    });
    BOOST_TEST(msg.empty(), path << ": " << msg);
    ++n;
  }
  return n;
}

inline std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (io::is_temp_name(e.path().filename().string())) out.push_back(e.path().string());
  return out;
}

inline std::string state_of(const std::string& w) {
  std::smatch m;
  std::string s = test::read_file(w + "/status.json");
  return std::regex_search(s, m, std::regex(R"re("state": "(\w+)")re")) ? m[1].str() : "";
}

// Writes NaN over dataset `group/name` (the first of `group`'s) of a checkpoint in place;
// HDF5 recomputes the chunk checksum, so the file still verifies.
inline void plant_nan(const std::string& path, const std::string& group = "ema") {
  auto st = io::load_checkpoint(path);
  const auto& m = group == "ema" ? st.ema : st.params;
  const auto name = m.begin()->first;
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  BOOST_REQUIRE(f >= 0);
  const std::string ds_name = (group == "ema" ? "ema/" : "model/params/") + name;
  hid_t ds = H5Dopen2(f, ds_name.c_str(), H5P_DEFAULT);
  auto nan = torch::full_like(m.begin()->second, std::nanf(""));
  BOOST_REQUIRE(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, nan.data_ptr()) >= 0);
  H5Dclose(ds);
  H5Fclose(f);
  // As an older scorch wrote it (version 3: no content identity, which the edit would no
  // longer match; a version 4 file edited so is refused as changed, io/checkpoint.h).
  as_older_version(path, 3, {"identity", "lineage"});
}

}  // namespace scorch::test::fault_helpers
