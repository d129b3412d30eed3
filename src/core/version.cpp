// Build and library versions (core/version.h). The git commit is written into
// scorch_build_info.h at configure time (CMake re-runs when HEAD or the index changes).
#include "scorch/core/version.h"

#include <hdf5.h>
#include <mpi.h>

#include <fmt/format.h>

#include "scorch/core/torch_compat.h"
#include "scorch_build_info.h"

#include <torch/cuda.h>
#ifdef SCORCH_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#ifdef SCORCH_HAVE_NCCL
#include <nccl.h>
#endif

namespace scorch {

const char* scorch_version() { return SCORCH_VERSION_STRING; }

std::vector<std::pair<std::string, std::string>> build_info() {
  std::vector<std::pair<std::string, std::string>> v;
  v.emplace_back("scorch", SCORCH_VERSION_STRING);
  v.emplace_back("commit", SCORCH_GIT_COMMIT);
  v.emplace_back("build_type", SCORCH_BUILD_TYPE);
  v.emplace_back("libtorch", compat::torch_version());
#ifdef SCORCH_HAVE_CUDA
  // The CUDA LibTorch was built with (its runtime is the one loaded), and the toolkit whose
  // headers compiled scorch (same major version: CMakeLists.txt checks it).
  v.emplace_back("cuda", fmt::format("{} (LibTorch's; scorch compiled with the {}.{} toolkit)", compat::torch_cuda_version(),
                                     CUDART_VERSION / 1000, (CUDART_VERSION % 1000) / 10));
  v.emplace_back("cudnn", compat::cudnn_version());
  v.emplace_back("gpus", fmt::format("{} visible", torch::cuda::device_count()));
#else
  v.emplace_back("cuda", "not built");
  v.emplace_back("cudnn", "not built");
  v.emplace_back("gpus", "none (a CPU build)");
#endif
#ifdef SCORCH_HAVE_NCCL
  // The libnccl.so.2 loaded (libtorch_cuda's), and the nccl.h compiled against.
  int nccl = 0;
  ncclGetVersion(&nccl);
  v.emplace_back("nccl", fmt::format("{}.{}.{} (headers {}.{}.{})", nccl / 10000, (nccl % 10000) / 100, nccl % 100,
                                     NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH));
#else
  v.emplace_back("nccl", "not built");
#endif
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  std::string m(mpi, static_cast<size_t>(len));
  if (auto cut = m.find_first_of(",\n"); cut != std::string::npos) m.resize(cut);
  v.emplace_back("mpi", m);
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  v.emplace_back("hdf5", fmt::format("{}.{}.{}", maj, min, rel));
  return v;
}

std::string build_info_text() {
  std::string s;
  for (const auto& [k, val] : build_info()) s += fmt::format("{}: {}\n", k, val);
  return s;
}

std::string build_info_line() {
  auto v = build_info();
  auto get = [&](const char* k) {
    for (const auto& [a, b] : v)
      if (a == k) return b;
    return std::string();
  };
  return fmt::format("scorch {} ({}, {}) | LibTorch {} | CUDA {} | cuDNN {} | NCCL {} | {} | HDF5 {}", get("scorch"),
                     get("commit"), get("build_type"), get("libtorch"), get("cuda"), get("cudnn"), get("nccl"),
                     get("mpi"), get("hdf5"));
}

}  // namespace scorch
