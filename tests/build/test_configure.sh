#!/usr/bin/env bash
# Configure refuses, naming what it found, the LibTorch set-ups a user can get wrong (each in a
# scratch build folder, nothing compiled):
#  1. SCORCH_CUDA=ON against a LibTorch without CUDA (Debian's 1.13, when installed);
#  2. an NCCL other than the one libtorch_cuda loads (the CUDA toolkit's, against the wheel's);
#  3. SCORCH_WITH_NCCL=OFF configures the CUDA path without NCCL; a misspelt choice stops.
# Not rehearsed here (no second toolkit or NCCL-less wheel on the machine): a CUDA LibTorch
# without NCCL, and a toolkit of another CUDA major version than LibTorch's.
# Usage: test_configure.sh BUILD_DIR (a configured CUDA build: its CMakeCache names LibTorch).
set -euo pipefail
BUILD=$(realpath "$1")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d /tmp/scorch_configure_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
TORCH_DIR=$(cache Torch_DIR)
[[ -n $TORCH_DIR ]] || { echo "SKIP: $BUILD has no Torch_DIR"; exit 77; }
grep -q "SCORCH_HAVE_CUDA" "$BUILD/build.ninja" || { echo "SKIP: $BUILD is not a CUDA build"; exit 77; }
PREFIX=$(realpath "$TORCH_DIR/../..")
n=0
# expect_failure NAME PATTERN CMAKE-ARGS...: configure must fail and print PATTERN.
expect_failure() {
  local name=$1 pattern=$2
  shift 2
  n=$((n + 1))
  if cmake -S "$ROOT" -B "$TMP/$n" -G Ninja -DSCORCH_BUILD_TESTS=OFF "$@" > "$TMP/$n.log" 2>&1; then
    tail -n 20 "$TMP/$n.log"; fail "$name: configure succeeded"
  fi
  grep -q -- "$pattern" "$TMP/$n.log" || { grep -A8 "CMake Error" "$TMP/$n.log" | head -20; fail "$name: no '$pattern'"; }
  echo "ok: $name: $(grep -A3 "CMake Error at CMakeLists" "$TMP/$n.log" | sed -n 2,3p | tr -s ' ' | head -c 240)"
}

if [[ -f /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake ]]; then
  expect_failure "CUDA asked of a CPU LibTorch" "SCORCH_CUDA=ON, but LibTorch 1.13" \
    -DCMAKE_PREFIX_PATH=/usr/lib/x86_64-linux-gnu/cmake -DSCORCH_CUDA=ON
else
  echo "no Debian LibTorch here: case 1 not run"
fi
other_nccl=$(ldconfig -p | awk '/libnccl.so.2 / {print $NF}' | head -n 1 || true)
if [[ -n $other_nccl && $(realpath "$other_nccl") != $(realpath "$(cache NCCL_LIBRARY)") ]]; then
  expect_failure "another NCCL than libtorch_cuda's" "but libtorch_cuda loads" \
    -DCMAKE_PREFIX_PATH="$TORCH_DIR/.." -DNCCL_LIBRARY="$other_nccl"
else
  echo "no second libnccl.so.2 on this machine: case 2 not run"
fi
# The CUDA path without the NCCL backend, when asked, configures.
n=$((n + 1))
cmake -S "$ROOT" -B "$TMP/$n" -G Ninja -DSCORCH_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$TORCH_DIR/.." \
  -DSCORCH_WITH_NCCL=OFF > "$TMP/$n.log" 2>&1 || { grep -A8 "CMake Error" "$TMP/$n.log"; fail "SCORCH_WITH_NCCL=OFF did not configure"; }
grep -q "CUDA path ON.*NCCL communicator OFF" "$TMP/$n.log" || fail "SCORCH_WITH_NCCL=OFF: $(grep 'scorch: C++' "$TMP/$n.log")"
echo "ok: SCORCH_WITH_NCCL=OFF configures the CUDA path without NCCL"
expect_failure "a misspelt choice" "SCORCH_CUDA=yes is not one of" -DCMAKE_PREFIX_PATH="$TORCH_DIR/.." -DSCORCH_CUDA=yes
echo "PASS: configure refusals ($n configures)"
