// Test module entry for suites that only drive the `scorch` binary: this process must not
// initialise MPI itself, or the mpiexec it starts would inherit a singleton's environment.
#define BOOST_TEST_MODULE scorch
#include "common.h"
