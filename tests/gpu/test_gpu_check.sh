#!/usr/bin/env bash
# The GPU kit's rehearsal on this CPU machine (jobs/gpu_check.sh --rehearse --light), twice:
#  1. on the checkout: every stage is listed in report.md and report.json, the CUDA stages are
#     skipped, every other one passes, and the benches' figures are in the report;
#  2. on a copy with compile errors planted in two CUDA-only files and one stage given a
#     3-second limit: the build stage fails naming both files (ninja -k 0 lists every error),
#     the stages after it still run, the stage over its limit is killed and reported as a
#     timeout, and the stage after that runs too: the dependency check, which must name the
#     package (nlohmann-json3-dev) taken out of the copy's carried list.
# Needs the carried .deb files (fetched with apt-get download when missing; skipped, exit 77,
# when they cannot be).
set -euo pipefail
BUILD=$(realpath "$1")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d /tmp/scorch_gpu_check_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
if ! bash "$ROOT/jobs/gpu_deps.sh" fetch > "$TMP/fetch.log" 2>&1; then
  # A machine whose packages were all installed may have no package lists yet.
  { apt-get update -qq && bash "$ROOT/jobs/gpu_deps.sh" fetch; } > "$TMP/fetch.log" 2>&1 ||
    { tail -3 "$TMP/fetch.log"; echo "cannot fetch the .deb files (apt-get download)"; exit 77; }
fi

# stage_field REPORT STAGE FIELD: a stage's field from report.json (read with Python's json).
stage_field() {
  /usr/bin/python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
s = [x for x in r["stages"] if x["name"] == sys.argv[2]]
print(s[0][sys.argv[3]] if s else "absent")' "$@"
}

echo "== 1. the rehearsal on the checkout"
rc=0
bash "$ROOT/jobs/gpu_check.sh" --rehearse --light --bin-build "$BUILD" --out "$TMP/a" || rc=$?
R=$TMP/a/report.json
/usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$R" || fail "report.json is not JSON"
for s in environment unpack configure build-core gpu-tests gpu-vs-cpu net train sampling eval comm build-rest cpu-tests dependencies; do
  st=$(stage_field "$R" "$s" status)
  grep -q "| $s | $st |" "$TMP/a/report.md" || fail "report.md does not list stage $s as $st"
  case $s in
    gpu-tests|gpu-vs-cpu) [[ $st == skipped ]] || fail "stage $s: $st, expected skipped without a GPU" ;;
    *) [[ $st == passed ]] || { cat "$TMP"/a/logs/*"_$s.log" | tail -30; fail "stage $s: $st ($(stage_field "$R" "$s" note))"; } ;;
  esac
done
((rc == 0)) || fail "gpu_check exited $rc with every stage passed or skipped"
for f in net_fashion_mnist_fp32 net_fashion_mnist_bf16_cl train_fashion_mnist_fp32 sample_fashion_mnist eval_fashion_mnist; do
  /usr/bin/python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
f = r["figures"][sys.argv[2]]
assert f.get("images_per_s", 0) > 0 or f.get("samplers") or f.get("bpd") or f.get("overlap"), f' "$R" "$f" || fail "figure $f missing from report.json"
done
[[ $(tar -tzf "$TMP/a/logs.tar.gz") == *report.md* ]] || fail "logs.tar.gz lacks the report"
echo "rehearsal: $(stage_field "$R" build-core seconds) s build, total $(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_s"])' "$R") s"

echo "== 2. planted compile errors and a stage over its limit"
targets=$(ninja -C "$ROOT/build-gpu-rehearsal" -t targets all 2>/dev/null || true)
if [[ $targets != *$'\n'scorch_cuda_compile_check:* ]] && ! grep -q SCORCH_HAVE_CUDA "$ROOT/build-gpu-rehearsal/build.ninja"; then
  echo "no CUDA toolkit and nccl.h here: the CUDA-only sources are not compiled, part 2 is skipped"
  exit 0
fi
COPY=$TMP/copy
mkdir -p "$COPY/third_party"
git -C "$ROOT" ls-files -z | tar -C "$ROOT" --null -T - -cf - | tar -C "$COPY" -xf -
ln -s "$ROOT/third_party/debs" "$COPY/third_party/debs"
[[ -d $ROOT/venv ]] && ln -s "$ROOT/venv" "$COPY/venv"  # the wheel's torch, as in part 1
echo 'static_assert(false, "planted in nccl_communicator");' >> "$COPY/src/dist/nccl_communicator.cpp"
echo 'int planted_error_in_torch_compat = undefined_name;' >> "$COPY/src/core/torch_compat.cpp"
# And a carried package taken out of the list: the dependency check must name it.
sed -i 's/ nlohmann-json3-dev//' "$COPY/jobs/gpu_deps.sh"
rc=0
bash "$COPY/jobs/gpu_check.sh" --rehearse --light --bin-build "$BUILD" --out "$TMP/b" \
  --only environment,unpack,configure,build-core,net,cpu-tests,dependencies --limit cpu-tests=3 || rc=$?
R=$TMP/b/report.json
((rc == 1)) || fail "gpu_check exited $rc with a failed build"
[[ $(stage_field "$R" build-core status) == failed ]] || fail "build-core: $(stage_field "$R" build-core status)"
note=$(stage_field "$R" build-core note)
[[ $note == *nccl_communicator* && $note == *torch_compat* ]] || fail "build-core's note does not name both files: $note"
grep -q "planted in nccl_communicator" "$TMP"/b/logs/*_build-core.log || fail "the build log lacks the first planted error"
grep -q "undefined_name" "$TMP"/b/logs/*_build-core.log || fail "the build log lacks the second planted error"
[[ $(stage_field "$R" net status) == passed ]] || fail "the stage after the failed build did not run: $(stage_field "$R" net status)"
[[ $(stage_field "$R" cpu-tests status) == timeout ]] || fail "cpu-tests with a 3 s limit: $(stage_field "$R" cpu-tests status)"
secs=$(stage_field "$R" cpu-tests seconds)
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$secs') < 10 else 1)" || fail "cpu-tests ran $secs s past its 3 s limit"
[[ $(stage_field "$R" dependencies status) == failed ]] || fail "the stage after the timeout: $(stage_field "$R" dependencies status)"
[[ $(stage_field "$R" dependencies note) == *nlohmann-json3-dev* ]] ||
  fail "the dependency check does not name the package left out: $(stage_field "$R" dependencies note)"
grep -q "| cpu-tests | timeout |" "$TMP/b/report.md" || fail "report.md does not show the timeout"
pgrep -f "$COPY" >/dev/null && fail "processes of the timed-out stage are still running"
echo "PASS: gpu_check rehearsal"
