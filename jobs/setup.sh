#!/usr/bin/env bash
# Installs the Debian packages scorch needs (only those missing) and builds it in ./build:
# the `scorch` binary only, or every target (the tests too) with SCORCH_BUILD_ALL=1. Output
# stays short: apt, cmake and the compiler write to build/setup.log, shown if a step fails.
# Idempotent: a second run finds everything installed and the build up to date.
# Sourced by jobs/demo.sh and tests/run.sh; also runnable on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(g++ cmake ninja-build pkg-config libtorch-dev libopenmpi-dev openmpi-bin libhdf5-dev
          libboost-test-dev libboost-dev libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
          libstb-dev nlohmann-json3-dev zlib1g-dev libssl-dev dataset-fashion-mnist)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "scorch setup: installing ${#missing[@]} Debian packages (${missing[*]})"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  mkdir -p build
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } > build/setup.log 2>&1 || { tail -n 40 build/setup.log; exit 1; }
fi

mkdir -p build
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >> build/setup.log 2>&1 || { tail -n 40 build/setup.log; exit 1; }
fi
start=$(date +%s)
target=(--target scorch)
[[ ${SCORCH_BUILD_ALL:-0} == 1 ]] && target=()
echo "scorch setup: building ${target[1]:-everything} (log: build/setup.log)"
cmake --build build -j"$(getconf _NPROCESSORS_ONLN)" "${target[@]}" >> build/setup.log 2>&1 \
  || { grep -E "error|Error" -A5 build/setup.log | head -n 60; exit 1; }
echo "scorch setup: build up to date ($(( $(date +%s) - start )) s)"

# Open MPI inside containers and as root (CI machines): allow it, avoid CMA shared memory.
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
