// Helpers of the multi-rank suite (dist/test_dist.cpp, dist/test_dist_state.cpp): error
// counts summed over ranks, a folder every rank (and node) sees, small image and point jobs,
// NCSN++ settings, host names by rank, tmpfs usage and the largest difference of two named
// tensor lists.
#pragma once
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <ATen/CPUGeneratorImpl.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include <linux/magic.h>

#include "common.h"
#include "scorch/core/random.h"
#include "scorch/dist/communicator.h"
#include "scorch/dist/reducer.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/checkpoint.h"
#include "scorch/losses/dsm.h"
#include "scorch/models/score_fn.h"
#include "scorch/core/host.h"
#include "scorch/data/source.h"
#include "scorch/dist/backend.h"
#include "scorch/dist/sharding.h"
#include "scorch/train/trainer.h"


namespace scorch::test::dist_helpers {

// Sum of error counts over ranks.
inline int64_t global_errors(dist::Communicator& comm, int64_t local) {
  auto t = torch::tensor({local}, torch::kInt64);
  comm.allreduce_sum(t);
  return t.item<int64_t>();
}

// A folder shared by all ranks (rank 0 names it, broadcast).
inline std::string shared_dir(dist::Communicator& comm, const std::string& tag) {
  std::string path;
  if (comm.rank() == 0) {
    const char* shared = std::getenv("SCORCH_TEST_SHARED_DIR");
    const std::filesystem::path base = shared && *shared ? shared : std::filesystem::temp_directory_path();
    path = (base / ("scorch_mpi_" + tag + "_" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  auto len = torch::tensor({static_cast<int64_t>(path.size())}, torch::kInt64);
  comm.broadcast(len, 0);
  auto buf = torch::zeros({len.item<int64_t>()}, torch::kUInt8);
  if (comm.rank() == 0) std::memcpy(buf.data_ptr(), path.data(), path.size());
  comm.broadcast(buf, 0);
  return std::string(static_cast<char*>(buf.data_ptr()), buf.numel());
}

// The same tiny image config on every rank, its dataset written once by rank 0.
inline Config image_config(dist::Communicator& world, const std::string& dir) {
  Config cfg;
  if (world.rank() == 0) cfg = test::tiny_image_config(dir + "/img.h5", 96);
  world.barrier();
  if (world.rank() != 0) {
    cfg = test::tiny_image_config(dir + "/img_r" + std::to_string(world.rank()) + ".h5", 8);
    cfg.data.path = dir + "/img.h5";  // the very same file as rank 0
  }
  cfg.training.batch_size = 4 * world.size();
  return cfg;
}
inline Config point_config(dist::Communicator& world, const std::string& dir) {
  Config cfg;
  if (world.rank() == 0) cfg = test::tiny_point_config(dir + "/pts.h5", 256);
  world.barrier();
  if (world.rank() != 0) {
    cfg = test::tiny_point_config(dir + "/pts_r" + std::to_string(world.rank()) + ".h5", 8);
    cfg.data.path = dir + "/pts.h5";
  }
  cfg.training.batch_size = 8 * world.size();
  return cfg;
}

// NCSN++ with FIR resampling and both pyramids, small.
inline void make_ncsnpp(Config& cfg, bool conditional = true) {
  cfg.model.name = "ncsnpp";
  cfg.model.fir = true;
  cfg.model.progressive = "output_skip";
  cfg.model.progressive_input = "residual";
  cfg.model.embedding_type = "fourier";
  cfg.model.init_scale = 0.1;
  cfg.model.conditional = conditional;
}

// Every rank's host name, by rank.
inline std::vector<std::string> hosts_by_rank(dist::Communicator& comm) {
  auto row = torch::zeros({64}, torch::kUInt8);
  const std::string h = host_name();
  std::memcpy(row.data_ptr(), h.data(), std::min<size_t>(h.size(), 63));
  auto all = comm.all_gather(row);
  std::vector<std::string> out;
  for (int r = 0; r < comm.size(); ++r) out.emplace_back(static_cast<const char*>(all[r].contiguous().data_ptr()));
  return out;
}

// Bytes in use on the file system at `path` if it is a tmpfs (memory), else -1.
inline int64_t tmpfs_used(const char* path) {
  struct statfs fs {};
  if (statfs(path, &fs) != 0 || fs.f_type != TMPFS_MAGIC) return -1;
  return static_cast<int64_t>(fs.f_blocks - fs.f_bfree) * static_cast<int64_t>(fs.f_bsize);
}

inline double max_diff(const train::NamedTensors& a, const train::NamedTensors& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i].second - b[i].second).abs().max().item<double>());
  return m;
}

}  // namespace scorch::test::dist_helpers
