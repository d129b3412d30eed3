// What this binary is: scorch's version and git commit, the build type, and the versions of
// LibTorch, CUDA/cuDNN/NCCL (when built with them), the MPI library and HDF5. `scorch
// --version` prints it, every train/sample/eval log opens with it and every checkpoint
// stores it in its attributes, so a result can always be traced to the code that made it.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace scorch {

// scorch's own version ("0.13.0").
const char* scorch_version();
// (key, value) pairs in a fixed order: scorch, commit, build_type, libtorch, cuda, cudnn,
// nccl, mpi, hdf5 (cuda/cudnn/nccl say "not built" without them).
std::vector<std::pair<std::string, std::string>> build_info();
// The same as lines "key: value".
std::string build_info_text();
// One line for log headers: "scorch 0.13.0 (abc1234, Release) | LibTorch 1.13.1 | ...".
std::string build_info_line();

}  // namespace scorch
