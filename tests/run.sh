#!/usr/bin/env bash
# The whole test suite: installs and builds scorch (jobs/setup.sh), then runs every
# Boost.Test suite through ctest, including the 2-rank MPI tests. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source jobs/setup.sh
cd build
ctest --output-on-failure --timeout 1800 "$@"
