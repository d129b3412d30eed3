#!/usr/bin/env bash
# The whole test suite: installs and builds scorch (jobs/setup.sh), then runs every
# Boost.Test suite through ctest, including the 2-rank MPI tests, the fault tests and the
# Slurm pipeline on a private single-node cluster (installs slurm-wlm and munge), and the
# multi-node suite on a cluster of Linux namespaces (tests/cluster; nftables, iptables, iproute2,
# libnetfilter-queue for the link delay).
# Idempotent. Run one labelled group alone with e.g. `bash tests/run.sh -L cluster`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCORCH_BUILD_ALL=1 source jobs/setup.sh
# Test-only packages: a real Slurm for the pipeline and requeue tests (tests/slurm/), and
# h5py, torch and scipy to check scorch's files with the real Python readers (string attributes
# read as str; an exported checkpoint restored as score_sde_pytorch does; the Inception
# interfaces' features and pytorch-fid's Frechet distance computed by Python).
pkgs=(slurm-wlm munge python3-h5py python3-torch python3-scipy nftables iptables iproute2 libnetfilter-queue-dev bc procps)
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    echo "tests: installing ${pkgs[*]} (log: build/setup.log)"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${pkgs[@]}"; } >> build/setup.log 2>&1 || { tail -n 40 build/setup.log; exit 1; }
    break
  fi
done
cd build
ctest --output-on-failure --timeout 1800 "$@"
