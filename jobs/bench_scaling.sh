#!/usr/bin/env bash
# Training throughput at 1 and 2 MPI ranks (1 intra-op thread each) on the demo job,
# measured in one run and printed side by side. The first LOG_FREQ steps are warm-up and
# not counted. Usage: bash jobs/bench_scaling.sh [STEPS] [extra --set ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source jobs/setup.sh --torch debian
STEPS=${1:-60}
shift || true
JOB=jobs/fashion_mnist.toml
export OMP_NUM_THREADS=1
[[ -f data/prepared/fashion_mnist_train.h5 ]] || build/scorch prepare fashion-mnist --out data/prepared
out=$(mktemp -d)
declare -A ips
for ranks in 1 2; do
  mpirun --oversubscribe -np "$ranks" build/scorch train --config "$JOB" --workdir "$out/r$ranks" \
    --set training.n_iters="$STEPS" --set training.log_freq=10 --set training.snapshot_freq=100000 "$@" >/dev/null 2>&1
  # mean images/s over the logged intervals after the first (warm-up)
  ips[$ranks]=$(awk -F, 'NR>2 {s+=$4; n++} END {printf "%.1f", s/n}' "$out/r$ranks/train_log.csv")
done
printf "%-8s %12s %8s\n" ranks images/s ratio
printf "%-8s %12s %8s\n" 1 "${ips[1]}" 1.00
printf "%-8s %12s %8s\n" 2 "${ips[2]}" "$(awk -v a="${ips[2]}" -v b="${ips[1]}" 'BEGIN {printf "%.2f", a/b}')"
rm -rf "$out"
