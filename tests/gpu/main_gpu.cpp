// Entry of the GPU suite: exits with 77 (ctest's SKIP_RETURN_CODE: skipped, not failed)
// when LibTorch sees no GPU, so the suite is harmless on CPU-only CI; otherwise MPI is
// initialised once (a world of one, or mpiexec's ranks) and Boost.Test runs.
#define BOOST_TEST_MODULE scorch_gpu
#define BOOST_TEST_NO_MAIN
#include "common.h"
#include "scorch/dist/communicator.h"

#include <iostream>

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::cout << "scorch_gpu_tests: no GPU visible to LibTorch: skipped\n";
    return 77;
  }
  scorch::dist::MpiSession session(&argc, &argv);
  return boost::unit_test::unit_test_main([] { return true; }, argc, argv);
}
