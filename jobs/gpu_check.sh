#!/usr/bin/env bash
# GPU bring-up in one command: builds scorch on a bare GPU machine from the checkout plus the
# carried third_party/debs/ (bash jobs/gpu_deps.sh fetch), tests it and measures it, and
# writes one report: DIR/report.md (people), DIR/report.json (tools), DIR/logs/NN_stage.log
# (every stage's full output), DIR/figures/*.json (the benches' own figures) and
# DIR/logs.tar.gz (logs and figures in one file, for leases that return few files).
#
#   bash jobs/gpu_check.sh [--out DIR]            # on the GPU machine (default build-gpu/report)
#   bash jobs/gpu_check.sh --rehearse [--light]   # the same script on a CPU machine (CI)
#
# Every stage runs under its own time limit (killed with its children when over it, recorded
# as "timeout", and the next stage runs) and within the whole budget (--budget, default 540 s:
# a stage that would start with less than 20 s left is "skipped: budget"). Stages run in the
# order a 15-minute lease needs them: what only a GPU can tell first, the CPU suites last.
#   environment   GPU, driver, CUDA, PyTorch/LibTorch, NCCL, cores
#   unpack        dpkg -x of the carried .deb files into third_party/prefix (never /)
#   configure     cmake against PyTorch's LibTorch and pip's NCCL (build-gpu)
#   build-core    ninja -k 0: scorch and the GPU tests (every compile error, not the first)
#   gpu-tests     ctest -L gpu
#   gpu-vs-cpu    20 steps of a small model on GPU and CPU (tolerance 1e-3), bf16 +
#                 channels_last resume bitwise on the GPU
#   net           bench net: DDPM++ and NCSN++ (CIFAR-10) at batch 128, fp32 / tf32 / bf16 /
#                 bf16 + channels_last: images/s, model FLOPs, MFU, peak memory
#   train         bench train --synthetic: DDPM++ batch 128, fp32 and bf16 + channels_last:
#                 step breakdown (data, forward, backward, exposed comm, optimizer + EMA)
#   sampling      bench sample: DDPM++ batch 256, PC (1000 steps, timed over 30), DPM-Solver++
#                 (20 steps), RK45
#   eval          bench eval: bits/dim of 64 images, FID statistics of 10,000 images through
#                 a TorchScript feature net (--feature-net, else a small random one)
#   comm          bench allreduce on CUDA tensors: MPI with 2 ranks on the one GPU, NCCL with 1
#   build-rest    ninja -k 0: every other target
#   cpu-tests     the quick CPU suites on the same (CUDA) build
#   dependencies  headers and libraries the build took from outside the prefix and LibTorch
# --rehearse: the CPU machine's version: the same build against PyPI's CUDA torch in the
#   checkout's venv (bash jobs/setup.sh --torch pip), configured with the carried packages,
#   compiled and linked here (no GPU: the CUDA stages are skipped, the benches run at tiny
#   sizes on the CPU with that CUDA binary); without a venv, Debian's LibTorch 1.13 and the
#   CUDA-only sources compiled as objects (scorch_cuda_compile_check). `dependencies` fails on
#   any header or library from a Debian package that is neither carried (jobs/gpu_deps.sh)
#   nor on the GPU machine.
# --light (with --rehearse): configure in build-gpu-rehearsal, compile only the CUDA-only
#   sources there (no PCH), and run the other stages on an existing build (--bin-build,
#   default build; the CUDA suite passes build-cuda).
# Other options: --only a,b,c (just these stages), --limit STAGE=SECONDS (override one
#   stage's limit; repeatable), --budget SECONDS, --feature-net PATH.
# Exit status: 0 if no stage failed or timed out, 1 otherwise.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

OUT=$ROOT/build-gpu/report
REHEARSE=0
LIGHT=0
BUDGET=540
BUDGET_SET=0
ONLY=""
FEATURE_NET=""
BIN_BUILD=$ROOT/build
declare -A LIMIT_OVERRIDE=()
usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --rehearse) REHEARSE=1; shift ;;
    --light) LIGHT=1; shift ;;
    --budget) BUDGET=$2; BUDGET_SET=1; shift 2 ;;
    --only) ONLY=",$2,"; shift 2 ;;
    --limit) LIMIT_OVERRIDE[${2%%=*}]=${2#*=}; shift 2 ;;
    --feature-net) FEATURE_NET=$(realpath -m "$2"); shift 2 ;;
    --bin-build) BIN_BUILD=$(realpath -m "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
((LIGHT == 0 || REHEARSE == 1)) || { echo "gpu_check: --light needs --rehearse" >&2; exit 2; }
# A full rehearsal compiles the whole CUDA build on the CPU machine's 2 cores (about 12 min
# against the GPU machine's 16): longer limits there, unless given.
if ((REHEARSE && !LIGHT)); then
  [[ $BUDGET_SET == 1 ]] || BUDGET=2400
  [[ -n ${LIMIT_OVERRIDE[build-core]:-} ]] || LIMIT_OVERRIDE[build-core]=1500
  [[ -n ${LIMIT_OVERRIDE[build-rest]:-} ]] || LIMIT_OVERRIDE[build-rest]=900
fi

BUILD=$ROOT/build-gpu
((REHEARSE)) && BUILD=$ROOT/build-gpu-rehearsal
# The binaries the test and bench stages run: this build, or (--light) an existing one.
BIN=$BUILD
((LIGHT)) && BIN=$BIN_BUILD
NPROC=$(getconf _NPROCESSORS_ONLN)
rm -rf "$OUT/logs" "$OUT/figures"
mkdir -p "$OUT/logs" "$OUT/figures"
FIG=$OUT/figures
T_START=$(date +%s)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1

# A Python with torch: the one on PATH, else the PyTorch venv of the GPU machines; in a
# rehearsal, the checkout's venv (jobs/setup.sh --torch pip: PyPI's CUDA torch) first.
PYTHON=python3
CANDIDATES=(python3 /usr/bin/python3 /opt/torch/.venv/bin/python3)
((REHEARSE)) && CANDIDATES=("$ROOT/venv/bin/python" "${CANDIDATES[@]}")
for p in "${CANDIDATES[@]}"; do
  if "$p" -c 'import torch' >/dev/null 2>&1; then PYTHON=$p; break; fi
done
export PATH=$(dirname "$(command -v "$PYTHON")"):$PATH
HAVE_GPU=0
if ((REHEARSE == 0)) && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then HAVE_GPU=1; fi
export TORCH_PYTHON=$PYTHON
if ((REHEARSE)); then
  # The wheel's CUDA LibTorch when the checkout has one (the GPU machine's build, compiled and
  # linked here), else Debian's 1.13 (the CUDA-only sources then compile as objects only).
  if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
    export TORCH_CMAKE_PREFIX=${TORCH_CMAKE_PREFIX:-/usr/lib/x86_64-linux-gnu/cmake}
  fi
  export SCORCH_WITH_NCCL=AUTO
  # The light rehearsal compiles a few files once: the torch PCH would cost more than it saves.
  # Said both ways, since the two share build-gpu-rehearsal (and CMake caches the choice).
  export SCORCH_CMAKE_ARGS="-DCMAKE_DISABLE_PRECOMPILE_HEADERS=$( ((LIGHT)) && echo ON || echo OFF)"
fi

# Sizes: the lease's, or the rehearsal's tiny ones on the CPU.
if ((REHEARSE)); then
  DEV=cpu NET_BATCH=2 NET_STEPS=1 TRAIN_BATCH=4 TRAIN_STEPS=1 SAMPLE_BATCH=2 PC_STEPS=3 BPD_IMAGES=2 FID_IMAGES=200
  JOBS=(fashion_mnist) SIZE_SETS=(--set model.nf=16 --set model.num_scales=20 --set eval.rtol=1e-2 --set eval.atol=1e-2)
  AR_MAX=1M
else
  DEV=cuda NET_BATCH=128 NET_STEPS=10 TRAIN_BATCH=128 TRAIN_STEPS=10 SAMPLE_BATCH=256 PC_STEPS=30 BPD_IMAGES=64
  FID_IMAGES=10000 JOBS=(cifar10_vp_ddpmpp_continuous cifar10_ve_ncsnpp_continuous) SIZE_SETS=() AR_MAX=256M
fi

NAMES=() STATUS=() SECS=() LIMITS=() NOTES=()
N=0
# run_stage NAME LIMIT NEEDS(gpu|any) FUNCTION: runs FUNCTION in its own process group under
# `timeout`, output into logs/NN_NAME.log; records passed | failed | timeout | skipped.
run_stage() {
  local name=$1 limit=$2 needs=$3 fn=$4
  [[ -n ${LIMIT_OVERRIDE[$name]:-} ]] && limit=${LIMIT_OVERRIDE[$name]}
  [[ -z $ONLY || $ONLY == *",$name,"* ]] || return 0
  N=$((N + 1))
  local log
  log=$OUT/logs/$(printf '%02d' "$N")_$name.log
  local left=$((BUDGET - ($(date +%s) - T_START)))
  local status="" note="" secs=0
  if [[ $needs == gpu ]] && ((HAVE_GPU == 0)); then
    status=skipped note="needs a GPU"
    echo "skipped: needs a GPU" > "$log"
  elif ((left < 20)); then
    status=skipped note="budget: ${left} s left of ${BUDGET} s"
    echo "skipped: $note" > "$log"
  else
    ((limit > left)) && limit=$left
    echo "gpu_check: [$N] $name (limit ${limit} s) ..." >&2
    local t0 rc
    t0=$(date +%s.%N)
    STAGE_LOG=$log timeout -k 5 "$limit" bash -c "$(declare -f "$fn" summary build_targets cuda_objects); $(declare -p ROOT BUILD BIN OUT FIG REHEARSE LIGHT NPROC PYTHON DEV \
      NET_BATCH NET_STEPS TRAIN_BATCH TRAIN_STEPS SAMPLE_BATCH PC_STEPS BPD_IMAGES FID_IMAGES JOBS SIZE_SETS AR_MAX \
      FEATURE_NET 2>/dev/null); set -eo pipefail; $fn" > "$log" 2>&1 < /dev/null
    rc=$?
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
    case $rc in
      0) status=passed ;;
      124|137) status=timeout note="killed after ${limit} s" ;;
      77) status=skipped note=$(tail -n 1 "$log") ;;
      *) status=failed note="exit $rc" ;;
    esac
    [[ $status == passed && -f $log.note ]] && note=$(cat "$log.note")
    [[ $status == failed && -f $log.note ]] && note="$note; $(cat "$log.note")"
    rm -f "$log.note"
  fi
  NAMES+=("$name") STATUS+=("$status") SECS+=("$(printf '%.1f' "$secs")") LIMITS+=("$limit") NOTES+=("$note")
  echo "gpu_check: [$N] $name: $status ${note:+($note) }$(printf '%.1f' "$secs") s" >&2
}

# Each stage writes a one-line summary for the report into "$note" (the log path + .note).
summary() { echo "$*" > "$STAGE_LOG.note"; }

st_environment() {
  echo "date: $(date -u)"; echo "host: $(hostname)"; echo "cores: $NPROC"; free -g | head -2
  echo "--- nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  nvidia-smi 2>&1 | head -15 || true
  echo "--- nvcc"; (command -v nvcc && nvcc --version) 2>&1 | tail -2 || true
  echo "--- cmake, ninja, g++"; cmake --version | head -1; ninja --version; g++ --version | head -1
  echo "--- python: $PYTHON"
  "$PYTHON" - <<'PY' 2>&1 || true
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cmake prefix", torch.utils.cmake_prefix_path)
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0); print("gpu", p.name, round(p.total_memory / 2**30, 1), "GiB")
try:
    import nvidia.nccl, os; d = list(nvidia.nccl.__path__)[0]; print("nccl", d, os.listdir(os.path.join(d, "lib")))
except Exception as e:
    print("nccl: not found as a pip package:", e)
PY
  echo "--- carried packages: $(ls "$ROOT"/third_party/debs/*.deb 2>/dev/null | wc -l)"
  local gpu
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)
  summary "${gpu:-no GPU}; $NPROC cores; torch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)"
}

st_unpack() { bash "$ROOT/jobs/gpu_deps.sh" unpack; summary "$(ls "$ROOT"/third_party/debs/*.deb | wc -l) packages"; }

st_configure() {
  BUILD_DIR=$BUILD bash "$ROOT/jobs/gpu_deps.sh" configure
  summary "$(grep -o 'scorch: C++.*' "$STAGE_LOG" | head -1)"
}

# ninja -k 0 over TARGETS: every error of every file; the summary names the files.
build_targets() {
  # shellcheck disable=SC1091
  source "$ROOT/third_party/env.sh"
  local rc=0
  ninja -C "$BUILD" -k 0 -j"$NPROC" "$@" || rc=$?
  local log files
  log=$STAGE_LOG
  files=$(grep -o '^FAILED: [^ ]*' "$log" | sed 's/^FAILED: //; s|.*/\([^/]*\)\.o$|\1|' | sort -u | paste -sd' ' - || true)
  if ((rc)); then summary "$(grep -c '^FAILED: ' "$log") targets failed: $files ($(grep -c ' error: ' "$log") errors)"
  else summary "built $*"; fi
  return $rc
}
# The objects of the sources only a CUDA build compiles (NCCL, devices, versions, compat).
cuda_objects() {
  ninja -C "$BUILD" -t targets all 2>/dev/null |
    grep -oE '^CMakeFiles/scorch_core.dir/src/(dist/nccl_communicator|dist/backend|core/torch_compat|core/version)\.cpp\.o' || true
}
st_build_core() {
  local targets=(scorch scorch_gpu_tests)
  ((LIGHT)) && targets=()
  if ((REHEARSE)) && [[ $(ninja -C "$BUILD" -t targets all 2>/dev/null) == *$'\n'scorch_cuda_compile_check:* ]]; then
    targets+=(scorch_cuda_compile_check)
  elif ((LIGHT)) && grep -q "SCORCH_HAVE_CUDA" "$BUILD/build.ninja" 2>/dev/null; then
    mapfile -t targets < <(cuda_objects)  # against the wheel's CUDA LibTorch, as on the GPU machine
  fi
  ((${#targets[@]})) || { echo "nothing to build"; return 0; }
  build_targets "${targets[@]}"
}
st_build_rest() { ((LIGHT)) && { echo "light rehearsal: the other targets come from $BIN"; return 0; }; build_targets all; }

st_gpu_tests() { ctest --test-dir "$BIN" -L gpu --timeout 110 --output-on-failure; summary "$(grep -E 'tests passed' "$STAGE_LOG")"; }

st_gpu_vs_cpu() {
  "$BIN/tests/scorch_gpu_tests" --run_test='gpu/gpu_training_follows_cpu_training,bf16_and_channels_last_train_and_resume_exactly' \
    --log_level=message
  summary "$(grep -o 'max |gpu - cpu|.*' "$STAGE_LOG" | head -1)"
}

st_net() {
  local job p cl
  for job in "${JOBS[@]}"; do
    for p in fp32 tf32 bf16 bf16+cl; do
      cl=()
      [[ $p == *+cl ]] && cl=(--channels-last)
      "$BIN/scorch" bench net --config "$ROOT/jobs/$job.toml" "${SIZE_SETS[@]}" --set dist.device=$DEV --batch "$NET_BATCH" \
        --steps "$NET_STEPS" --warmup 2 --precision "${p%+cl}" "${cl[@]}" --json "$FIG/net_${job}_${p/+/_}.json"
    done
  done
  summary "$(grep -h -o '[0-9.]* images/s' "$STAGE_LOG" | paste -sd' ' -) (${JOBS[*]} x fp32 tf32 bf16 bf16+cl)"
}

st_train() {
  local p sets
  for p in fp32 bf16_cl; do
    sets=(--set training.precision=fp32 --set training.channels_last=false)
    [[ $p == bf16_cl ]] && sets=(--set training.precision=bf16 --set training.channels_last=true)
    "$BIN/scorch" bench train --config "$ROOT/jobs/${JOBS[0]}.toml" "${SIZE_SETS[@]}" --set dist.device=$DEV \
      --set training.batch_size="$TRAIN_BATCH" "${sets[@]}" --steps "$TRAIN_STEPS" --warmup 2 \
      --synthetic $((TRAIN_BATCH * 4)) --json "$FIG/train_${JOBS[0]}_$p.json"
  done
  summary "$(grep -h '^on ' "$STAGE_LOG" | awk '{print $2 " images/s"}' | paste -sd' ' -) (fp32, bf16+cl; overlap on)"
}

st_sampling() {
  "$BIN/scorch" bench sample --config "$ROOT/jobs/${JOBS[0]}.toml" "${SIZE_SETS[@]}" --set dist.device=$DEV \
    --set sampling.steps=20 --batch "$SAMPLE_BATCH" --method pc,dpm_solver,ode --max-steps "$PC_STEPS" \
    --json "$FIG/sample_${JOBS[0]}.json"
  summary "$(grep -E '^(pc|dpm|ode)' "$STAGE_LOG" | awk '{print $1 " " $6 " img/s"}' | paste -sd',' -)"
}

st_eval() {
  local net=()
  [[ -n $FEATURE_NET ]] && net=(--feature-net "$FEATURE_NET")
  "$BIN/scorch" bench eval --config "$ROOT/jobs/${JOBS[0]}.toml" "${SIZE_SETS[@]}" --set dist.device=$DEV \
    --bpd-images "$BPD_IMAGES" --fid-images "$FID_IMAGES" --batch 500 "${net[@]}" --json "$FIG/eval_${JOBS[0]}.json"
  summary "$(grep -o '^bits/dim: .* images/s\|^FID statistics: .* images/s' "$STAGE_LOG" | sed 's/,.*, / /' | paste -sd';' -)"
}

st_comm() {
  # shellcheck disable=SC1091
  [[ -f $ROOT/third_party/env.sh ]] && source "$ROOT/third_party/env.sh"
  local dev=cuda
  ((REHEARSE)) && dev=cpu
  mpirun --oversubscribe -np 2 "$BIN/scorch" bench allreduce --device $dev --backend mpi --max-bytes "$AR_MAX" --iters 10
  if ((REHEARSE == 0)); then
    "$BIN/scorch" bench allreduce --device cuda --backend nccl --max-bytes "$AR_MAX" --iters 10
  fi
  summary "$(grep -h '# average bus bandwidth' "$STAGE_LOG" | paste -sd';' -)"
}

st_cpu_tests() {
  local suites='config|random_streams|sde_ground_truth|checkpoint|networks|samplers|metrics'
  ((REHEARSE)) && suites='config|random_streams|checkpoint'  # 2 cores: the quickest three
  ctest --test-dir "$BIN" -R "^($suites)\$" --timeout 300 --output-on-failure
  summary "$(grep -E 'tests passed' "$STAGE_LOG")"
}

# The headers every object of the build included and the shared libraries `scorch` links
# directly, outside the prefix, LibTorch, CUDA/NCCL, the compiler and the C library. In a
# rehearsal each is mapped to its Debian package (on the light rehearsal's existing build,
# which took everything from the system: the package, not the path, is what is checked), and
# a package that is neither carried nor on the GPU machine fails the stage.
st_dependencies() {
  local prefix=$ROOT/third_party/prefix deps_build=$BUILD
  ((LIGHT)) && deps_build=$BIN
  local torch_dirs='/torch/|/ATen/|/c10/|/caffe2/|/cuda|nvidia|python3'
  ninja -C "$deps_build" -t deps 2>/dev/null | grep -E '^    /' | sed 's/^ *//' | sort -u > "$OUT/logs/headers.txt"
  grep -vE "^$prefix|^$ROOT/|$torch_dirs|/c\+\+/|/gcc/|^/usr/include/(x86_64-linux-gnu/)?(bits|sys|gnu|asm|asm-generic|linux)/" \
    "$OUT/logs/headers.txt" > "$OUT/logs/headers_outside.txt" || true
  : > "$OUT/logs/libraries.txt"
  if [[ -x $deps_build/scorch ]]; then
    local lib
    for lib in $(readelf -d "$deps_build/scorch" | grep NEEDED | sed 's/.*\[\(.*\)\]/\1/'); do
      ldd "$deps_build/scorch" | awk -v l="$lib" '$1 == l {print ($3 == "not" ? l " NOT FOUND" : $3)}' >> "$OUT/logs/libraries.txt"
    done
  fi
  echo "headers: $(wc -l < "$OUT/logs/headers.txt") in all, $(wc -l < "$OUT/logs/headers_outside.txt") outside the prefix and LibTorch"
  echo "libraries scorch links directly:"; sed 's/^/  /' "$OUT/logs/libraries.txt"
  if grep -q "NOT FOUND" "$OUT/logs/libraries.txt"; then
    summary "libraries not found: $(grep 'NOT FOUND' "$OUT/logs/libraries.txt" | cut -d' ' -f1 | paste -sd' ' -)"
    return 1
  fi
  if ((REHEARSE == 0)) || ! command -v dpkg >/dev/null; then
    sed 's|/[^/]*$||' "$OUT/logs/headers_outside.txt" | sort | uniq -c | sort -rn | head -20
    summary "$(wc -l < "$OUT/logs/headers_outside.txt") headers from outside the prefix (listed in the log)"
    return 0
  fi
  local carried base
  carried=$(sed -n '/^PACKAGES=(/,/^)/p' "$ROOT/jobs/gpu_deps.sh" | tr ' ()' '\n\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u)
  # On the GPU machine already: the C library and the compiler's, and what PyTorch's wheel
  # ships. glog and gflags are included only by Debian's LibTorch headers (its c10 is built
  # with C10_USE_GLOG; PyTorch's wheels are not).
  base='^(libc6|libc6-dev|linux-libc-dev|libstdc\+\+6|libstdc\+\+-[0-9]+-dev|libgcc-s1|libgcc-[0-9]+-dev|libtorch-dev|libtorch[0-9.]+|libgflags-dev|libgoogle-glog-dev)$'
  local pkgs bad=() p
  pkgs=$( (cat "$OUT/logs/headers_outside.txt"; grep -v "NOT FOUND" "$OUT/logs/libraries.txt" | xargs -r realpath) |
    xargs -r dpkg -S 2>/dev/null | cut -d: -f1 | tr ',' '\n' | sed 's/ //g' | sort -u || true)
  for p in $pkgs; do
    grep -qx "$p" <<< "$carried" || [[ $p =~ $base ]] || bad+=("$p")
  done
  echo "packages whose headers or libraries the build used: $(echo $pkgs)"
  if ((${#bad[@]})); then
    echo "NOT carried by jobs/gpu_deps.sh and not on the GPU machine: ${bad[*]}"
    summary "packages the GPU machine lacks: ${bad[*]} (add them to PACKAGES in jobs/gpu_deps.sh)"
    return 1
  fi
  summary "every header and library outside LibTorch comes from a carried package ($(echo $pkgs | wc -w) packages)"
}

run_stage environment 30 any st_environment
run_stage unpack 60 any st_unpack
run_stage configure 90 any st_configure
run_stage build-core 330 any st_build_core
run_stage gpu-tests 120 gpu st_gpu_tests
run_stage gpu-vs-cpu 90 gpu st_gpu_vs_cpu
run_stage net 150 any st_net
run_stage train 120 any st_train
run_stage sampling 120 any st_sampling
run_stage eval 90 any st_eval
run_stage comm 60 any st_comm
run_stage build-rest 240 any st_build_rest
run_stage cpu-tests 150 any st_cpu_tests
run_stage dependencies 30 any st_dependencies

# ---------------------------------------------------------------- the report
TOTAL=$(($(date +%s) - T_START))
json_str() {
  local v=$1
  v=${v//\\/\\\\}
  v=${v//\"/\\\"}
  v=${v//[$'\t\n\r']/ }
  printf '"%s"' "$(printf '%s' "$v" | tr -d '\000-\037')"
}
FAILED=0
{
  echo "{"
  echo "  \"tool\": \"jobs/gpu_check.sh\","
  echo "  \"mode\": $(json_str "$( ((REHEARSE)) && echo "rehearsal$( ((LIGHT)) && echo " (light)")" || echo gpu)"),"
  echo "  \"commit\": $(json_str "$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"),"
  echo "  \"date\": $(json_str "$(date -u +%FT%TZ)"),"
  echo "  \"host\": $(json_str "$(hostname)"),"
  echo "  \"budget_s\": $BUDGET,"
  echo "  \"total_s\": $TOTAL,"
  echo "  \"stages\": ["
  for i in "${!NAMES[@]}"; do
    [[ ${STATUS[$i]} == failed || ${STATUS[$i]} == timeout ]] && FAILED=1
    sep=","; ((i == ${#NAMES[@]} - 1)) && sep=""
    echo "    {\"name\": $(json_str "${NAMES[$i]}"), \"status\": \"${STATUS[$i]}\", \"seconds\": ${SECS[$i]}, \"limit_s\": ${LIMITS[$i]}, \"note\": $(json_str "${NOTES[$i]}"), \"log\": \"logs/$(printf '%02d' $((i + 1)))_${NAMES[$i]}.log\"}$sep"
  done
  echo "  ],"
  echo "  \"figures\": {"
  first=1
  for f in "$FIG"/*.json; do
    [[ -f $f ]] || continue
    ((first)) || echo ","
    first=0
    printf '    %s: ' "$(json_str "$(basename "$f" .json)")"
    sed '2,$s/^/    /' "$f"
  done
  echo ""
  echo "  }"
  echo "}"
} > "$OUT/report.json"

{
  echo "# scorch GPU check: $( ((REHEARSE)) && echo "rehearsal on $(hostname) (CPU$( ((LIGHT)) && echo ", light"))" || echo "$(hostname)")"
  echo
  echo "Commit $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null), $(date -u '+%F %T UTC'), total ${TOTAL} s of a ${BUDGET} s budget."
  echo
  echo "| # | stage | status | seconds | limit | note |"
  echo "|---|---|---|---|---|---|"
  for i in "${!NAMES[@]}"; do
    echo "| $((i + 1)) | ${NAMES[$i]} | ${STATUS[$i]} | ${SECS[$i]} | ${LIMITS[$i]} | ${NOTES[$i]//|//} |"
  done
  for i in "${!NAMES[@]}"; do
    [[ ${STATUS[$i]} == skipped ]] && continue
    log=logs/$(printf '%02d' $((i + 1)))_${NAMES[$i]}.log
    echo
    echo "## ${NAMES[$i]}: ${STATUS[$i]}"
    echo
    echo "Full log: \`$log\`. Its figures and results:"
    echo
    echo '```'
    case ${NAMES[$i]} in
      build-core|build-rest) grep -E ' error: |^FAILED: ' "$OUT/$log" | head -40; tail -n 3 "$OUT/$log" ;;
      net|train|sampling|eval|comm) grep -E '^(bench|#|on |off |pc|dpm|ode|bits|FID|sampler|overlap| +[0-9])' "$OUT/$log" | head -60 ;;
      *) tail -n 25 "$OUT/$log" ;;
    esac
    echo '```'
  done
} > "$OUT/report.md"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs figures report.md report.json 2>/dev/null
echo "gpu_check: report in $OUT/report.md and $OUT/report.json ($TOTAL s)" >&2
exit $FAILED
