// Test module entry for suites that call the library's MPI code: MPI is initialised once
// for the whole run (a world of one, or of mpiexec's ranks), one intra-op thread.
#define BOOST_TEST_MODULE scorch
#include "common.h"
#include "scorch/dist/communicator.h"

namespace {
struct MpiFixture {
  MpiFixture() : session(nullptr, nullptr) { torch::set_num_threads(1); }
  scorch::dist::MpiSession session;
};
}  // namespace
BOOST_TEST_GLOBAL_FIXTURE(MpiFixture);
