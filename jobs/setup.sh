#!/usr/bin/env bash
# Installs what scorch needs (only what is missing) and builds it. Three ways:
#
#   bash jobs/setup.sh                        # Debian's LibTorch 1.13 (CPU) -> ./build
#   bash jobs/setup.sh --torch pip            # PyPI's CUDA torch in ./venv   -> ./build-cuda
#   bash jobs/setup.sh --torch-prefix PATH    # a PyTorch you already have    -> ./build-cuda
#
# --torch pip: a virtual environment ./venv (Debian's python3) with torch pinned
#   (--torch-version, default 2.15.0) and the NVIDIA wheels it names (CUDA runtime, cuBLAS,
#   cuDNN, NCCL, ...: about 2.9 GB), plus numpy, scipy and h5py for the tests' Python checks.
#   The wheels are downloaded once into SCORCH_WHEEL_CACHE (default ~/.cache/scorch/wheels)
#   and installed from there, so a later run or another clone on the machine downloads nothing.
# --torch-prefix PATH: an existing install, e.g. on a cluster's login node: PATH is a Python
#   whose torch to use (/opt/torch/.venv/bin/python3), or a LibTorch folder (site-packages/torch,
#   an unzipped libtorch) holding share/cmake/Torch. Nothing is installed into it.
# Either builds the CUDA/NCCL scorch: the CUDA toolkit's nvcc must be on PATH (it compiles;
# the binary runs on the wheel's libraries, found by RPATH: no LD_LIBRARY_PATH), and
# configure stops naming what is wrong (no CUDA in that torch, no NCCL, an nvcc of another
# CUDA major version, the old C++ ABI). TORCH_CUDA_ARCH_LIST (default 9.0: H100/H200) sets
# the GPU architectures. Without a GPU the binary runs everything on the CPU.
#
# Other options: --build-dir DIR, --all (every target, the tests too; or SCORCH_BUILD_ALL=1).
# Output stays short: apt, pip, cmake and the compiler write to DIR/setup.log, shown if a step
# fails. Idempotent: a second run finds everything installed and the build up to date.
# Sourced by jobs/demo.sh and tests/run.sh (which read SCORCH_BUILD_DIR); runnable on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH_MODE=debian
TORCH_VERSION=${SCORCH_TORCH_VERSION:-2.15.0}
TORCH_PREFIX_ARG=""
BUILD_DIR=""
BUILD_ALL=${SCORCH_BUILD_ALL:-0}
while (($#)); do
  case $1 in
    --torch) TORCH_MODE=$2; shift 2 ;;
    --torch-version) TORCH_VERSION=$2; shift 2 ;;
    --torch-prefix) TORCH_MODE=prefix; TORCH_PREFIX_ARG=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --all) BUILD_ALL=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scorch setup: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $TORCH_MODE in
  debian|pip|prefix) ;;
  *) echo "scorch setup: --torch $TORCH_MODE is not one of: debian, pip (or --torch-prefix PATH)" >&2; exit 2 ;;
esac
[[ -n $BUILD_DIR ]] || { [[ $TORCH_MODE == debian ]] && BUILD_DIR=build || BUILD_DIR=build-cuda; }
mkdir -p "$BUILD_DIR"
LOG=$BUILD_DIR/setup.log
: >> "$LOG"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

PACKAGES=(g++ cmake ninja-build pkg-config libopenmpi-dev openmpi-bin libhdf5-dev
          libboost-test-dev libboost-dev libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
          libstb-dev nlohmann-json3-dev zlib1g-dev libssl-dev dataset-fashion-mnist)
[[ $TORCH_MODE == debian ]] && PACKAGES+=(libtorch-dev)
[[ $TORCH_MODE == pip ]] && PACKAGES+=(python3-venv)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "scorch setup: installing ${#missing[@]} Debian packages (${missing[*]})"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } >> "$LOG" 2>&1 || { tail -n 40 "$LOG"; exit 1; }
fi

CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release)
if [[ $TORCH_MODE == pip ]]; then
  VENV=${SCORCH_VENV:-venv}
  CACHE=${SCORCH_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scorch/wheels}
  WANT=("torch==$TORCH_VERSION" numpy scipy h5py)
  have=$("$VENV/bin/python" -c 'import torch, numpy, scipy, h5py; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
  if [[ $have != "$TORCH_VERSION" ]]; then
    [[ -x $VENV/bin/python ]] || /usr/bin/python3 -m venv "$VENV" >> "$LOG" 2>&1 || { tail -n 20 "$LOG"; exit 1; }
    mkdir -p "$CACHE"
    if ! "$VENV/bin/pip" install -q --no-cache-dir --no-index --find-links "$CACHE" "${WANT[@]}" >> "$LOG" 2>&1; then
      before=$(du -sm "$CACHE" | cut -f1)
      t=$(date +%s)
      echo "scorch setup: downloading torch $TORCH_VERSION and its NVIDIA wheels into $CACHE (about 2.9 GB, once)"
      "$VENV/bin/pip" download -q --no-cache-dir -d "$CACHE" "${WANT[@]}" >> "$LOG" 2>&1 || { tail -n 20 "$LOG"; exit 1; }
      echo "scorch setup: downloaded $(( $(du -sm "$CACHE" | cut -f1) - before )) MB in $(( $(date +%s) - t )) s"
      "$VENV/bin/pip" install -q --no-cache-dir --no-index --find-links "$CACHE" "${WANT[@]}" >> "$LOG" 2>&1 || { tail -n 20 "$LOG"; exit 1; }
    fi
    echo "scorch setup: $VENV has torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
  fi
  TORCH_PY=$VENV/bin/python
elif [[ $TORCH_MODE == prefix ]]; then
  TORCH_PY=""
  if [[ -f $TORCH_PREFIX_ARG && -x $TORCH_PREFIX_ARG ]]; then
    TORCH_PY=$TORCH_PREFIX_ARG
  elif [[ ! -f $TORCH_PREFIX_ARG/share/cmake/Torch/TorchConfig.cmake ]]; then
    echo "scorch setup: --torch-prefix $TORCH_PREFIX_ARG is neither a Python nor a LibTorch folder (no" \
         "share/cmake/Torch/TorchConfig.cmake there)" >&2
    exit 2
  fi
fi
if [[ $TORCH_MODE != debian ]]; then
  if [[ -n ${TORCH_PY:-} ]]; then
    TORCH_CMAKE=$("$TORCH_PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>> "$LOG") ||
      { echo "scorch setup: $TORCH_PY cannot import torch" >&2; exit 1; }
    CMAKE_ARGS+=(-DSCORCH_PYTHON="$(realpath -s "$TORCH_PY")")
  else
    TORCH_CMAKE=$(realpath "$TORCH_PREFIX_ARG")/share/cmake
  fi
  command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] ||
    { echo "scorch setup: no nvcc on PATH: the CUDA build needs the CUDA toolkit's compiler (put its bin/ on PATH)" >&2; exit 1; }
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$TORCH_CMAKE" -DSCORCH_CUDA=ON)
fi

if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja "${CMAKE_ARGS[@]}" >> "$LOG" 2>&1 ||
    { grep -A12 "CMake Error" "$LOG" | head -n 40; rm -f "$BUILD_DIR/CMakeCache.txt"; exit 1; }
  grep -o "scorch: C++.*" "$LOG" | tail -n 1
fi
start=$(date +%s)
target=(--target scorch)
[[ $BUILD_ALL == 1 ]] && target=()
echo "scorch setup: building ${target[1]:-everything} in $BUILD_DIR (log: $LOG)"
cmake --build "$BUILD_DIR" -j"$(getconf _NPROCESSORS_ONLN)" "${target[@]}" >> "$LOG" 2>&1 \
  || { grep -E "error|Error" -A5 "$LOG" | head -n 60; exit 1; }
echo "scorch setup: build up to date ($(( $(date +%s) - start )) s)"
SCORCH_BUILD_DIR=$BUILD_DIR

# Open MPI inside containers and as root (CI machines): allow it, avoid CMA shared memory.
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
