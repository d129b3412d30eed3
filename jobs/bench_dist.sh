#!/usr/bin/env bash
# Data-parallel figures in one run, printed side by side:
#  1. weak scaling 1 -> 2 ranks (fixed per-rank batch) with gradient overlap on and off:
#     images/s, step time, exposed communication and its share of the step, efficiency;
#  2. `scorch bench allreduce` on 2 ranks: the communicator's all-reduce against a plain
#     MPI_Allreduce loop of the same sizes.
# Usage: bash jobs/bench_dist.sh [STEPS] [extra bench-train options, e.g. --synthetic 64 --set ...]
# (env: JOB, PER_RANK, MAX_BYTES, THREADS, SKIP_ALLREDUCE=1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/scorch ]] || source jobs/setup.sh --torch debian
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
STEPS=${1:-10}
shift || true
JOB=${JOB:-jobs/fashion_mnist.toml}
PER_RANK=${PER_RANK:-32}
MAX_BYTES=${MAX_BYTES:-64M}
THREADS=${THREADS:-1}
[[ -f data/prepared/fashion_mnist_train.h5 ]] || build/scorch prepare fashion-mnist --out data/prepared >/dev/null
declare -A row
for ranks in 1 2; do
  out=$(mpirun --oversubscribe -np "$ranks" build/scorch --threads "$THREADS" bench train --config "$JOB" \
        --set training.batch_size=$((PER_RANK * ranks)) --steps "$STEPS" --warmup 2 "$@" 2>/dev/null)
  for ov in on off; do
    row[$ranks,$ov]=$(awk -v ov="$ov" '$1 == ov {print $2, $3, $8, $5+$6+$7+$8+$9}' <<<"$out")
  done
done
echo "# weak scaling: $JOB, $PER_RANK images per rank, $STEPS steps, $THREADS thread(s) per rank"
printf "%-6s %-8s %10s %9s %12s %8s %11s\n" ranks overlap images/s "step ms" "exposed ms" share efficiency
for ranks in 1 2; do
  for ov in on off; do
    read -r ips step comm total <<<"${row[$ranks,$ov]}"
    read -r ips1 _ <<<"${row[1,$ov]}"
    printf "%-6s %-8s %10s %9s %12s %7.1f%% %10.2f\n" "$ranks" "$ov" "$ips" "$step" "$comm" \
      "$(awk -v c="$comm" -v t="$total" 'BEGIN {print (t > 0 ? 100 * c / t : 0)}')" \
      "$(awk -v a="$ips" -v b="$ips1" -v r="$ranks" 'BEGIN {print a / (b * r)}')"
  done
done
[[ ${SKIP_ALLREDUCE:-0} == 1 ]] && exit 0
echo
mpirun --oversubscribe -np 2 build/scorch bench allreduce --max-bytes "$MAX_BYTES" --iters 10 --warmup 3 2>/dev/null
