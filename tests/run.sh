#!/usr/bin/env bash
# The whole test suite, on the two LibTorch builds scorch supports:
#  1. the CUDA/NCCL build against PyPI's torch 2.x (jobs/setup.sh --torch pip: ./venv,
#     ./build-cuda): every Boost.Test suite through ctest, including the 2-rank MPI tests,
#     the fault tests, the Slurm pipeline on a private single-node cluster (installs
#     slurm-wlm and munge), the multi-node suite on a cluster of Linux namespaces
#     (tests/cluster; nftables, iptables, iproute2, libnetfilter-queue for the link delay) and
#     the GPU kit's rehearsal. There is no GPU here: the binary runs them on the CPU, and the
#     `gpu` suite is skipped.
#  2. the demo's build against Debian's LibTorch 1.13 (./build): the suites the demo's
#     commands pass through (DEBIAN_SUITES below).
# The tests' Python checks use the virtual environment's torch 2.x, scipy and h5py.
# Idempotent. One labelled group or suite alone, on the CUDA build only:
# `bash tests/run.sh -L cluster` or `bash tests/run.sh -R farm` (arguments go to ctest).
# SCORCH_TEST_BUILDS="cuda debian" (the default) chooses the builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILDS=${SCORCH_TEST_BUILDS:-cuda debian}
DEBIAN_SUITES='config|datasets|converters|checkpoint|sde_ground_truth|metrics|dist_2ranks|cli|farm'
t_all=$(date +%s)
# Test-only packages: a real Slurm for the pipeline and requeue tests (tests/slurm/), h5py for
# the cluster suite's file comparisons inside the namespace nodes.
pkgs=(slurm-wlm munge python3-h5py nftables iptables iproute2 libnetfilter-queue-dev bc procps)
install_test_packages() {
  local p SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      echo "tests: installing ${pkgs[*]} (log: $1/setup.log)"
      { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
          "${pkgs[@]}"; } >> "$1/setup.log" 2>&1 || { tail -n 40 "$1/setup.log"; exit 1; }
      break
    fi
  done
}
rc=0
if [[ $BUILDS == *cuda* ]]; then
  t=$(date +%s)
  SCORCH_BUILD_ALL=1 source jobs/setup.sh --torch pip
  cd "$ROOT"
  install_test_packages build-cuda
  echo "tests: CUDA build against PyPI's torch ready ($(( $(date +%s) - t )) s); ctest in build-cuda"
  t=$(date +%s)
  (cd build-cuda && ctest --output-on-failure --timeout 1800 "$@") || rc=1
  echo "tests: build-cuda ctest $(( $(date +%s) - t )) s"
fi
if [[ $BUILDS == *debian* && $# -eq 0 ]]; then
  t=$(date +%s)
  SCORCH_BUILD_ALL=1 source jobs/setup.sh --torch debian
  cd "$ROOT"
  install_test_packages build
  echo "tests: Debian LibTorch 1.13 build ready ($(( $(date +%s) - t )) s); the demo's suites in build"
  t=$(date +%s)
  (cd build && ctest --output-on-failure --timeout 1800 -R "^($DEBIAN_SUITES)\$") || rc=1
  echo "tests: build ctest $(( $(date +%s) - t )) s"
fi
echo "tests: done in $(( $(date +%s) - t_all )) s"
exit $rc
