#!/usr/bin/env bash
# Multi-node figures on the namespace cluster (tests/cluster), printed side by side in one run:
#  1. weak scaling of the demo U-Net and of a small DDPM++ at 32x32 over 1, 2 and 4 nodes
#     (one rank per node, a fixed batch per rank), the inter-node links rate-limited by tc to
#     each of RATES, gradient overlap on and off: images/s, step ms, exposed communication ms
#     and its share of the step (scorch bench train);
#  2. `scorch bench allreduce` between 2 nodes at each rate: the communicator's all-reduce
#     beside a plain MPI_Allreduce loop of the same sizes on the same link;
#  3. the sampler farm on 2 nodes x 1 rank with node2 held to SLOW_PCT% of a core (its CPU
#     cgroup): batches per node and wall time, static against dynamic dealing.
# All nodes share this machine's cores: with 4 nodes x 1 rank on 2 cores each rank computes
# at about half speed, so compare overlap on/off and the rates, not node counts, for compute.
# Usage: bash jobs/bench_cluster.sh     (env: RATES="100mbit 1gbit", STEPS=6, PER_RANK=8,
#        NODES="1 2 4", SLOW_PCT=35, SKIP="allreduce farm" to leave parts out)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/scorch ]] || source jobs/setup.sh --torch debian
C=tests/cluster
RATES=${RATES:-100mbit 1gbit}
STEPS=${STEPS:-6}
PER_RANK=${PER_RANK:-8}
NODES=${NODES:-1 2 4}
SLOW_PCT=${SLOW_PCT:-35}
SKIP=${SKIP:-}
export OMP_NUM_THREADS=1
work=${SCORCH_CLUSTER_DIR:-/var/tmp/scorch-cluster}/shared/bench.$$
trap '"$C/down.sh" >/dev/null 2>&1; rm -rf "$work"' EXIT
mkdir -p "$work"
[[ -f data/prepared/fashion_mnist_train.h5 ]] || build/scorch prepare fashion-mnist --out data/prepared >/dev/null
max_nodes=$(tr ' ' '\n' <<<"$NODES" | sort -n | tail -n 1)
"$C/up.sh" "$max_nodes" >/dev/null

# Two networks: the demo's U-Net (Fashion-MNIST 28x28) and DDPM++ (the CIFAR-10 job's
# architecture at nf = 32, 4 resolutions, 32x32x3 synthetic data). Buckets of 0.5 MiB give
# these small models (4.5 and 7.1 MB of gradients) about as many buckets as the 25 MiB default
# gives the full-size DDPM++ (247 MB), so that overlap has as much to work with.
buckets="--set dist.bucket_mb=0.5"
nets=("unet|jobs/fashion_mnist.toml|$buckets"
      "ddpm++ nf32|jobs/cifar10_vp_ddpmpp_continuous.toml|$buckets --synthetic 256 --set model.nf=32 --set model.num_res_blocks=1")
echo "# 1. weak scaling: $PER_RANK images per rank, $STEPS steps, 1 rank per node, $(getconf _NPROCESSORS_ONLN) cores shared by all nodes"
printf "%-12s %-7s %-6s %-8s %10s %9s %12s %8s\n" network link nodes overlap images/s "step ms" "exposed ms" share
for net in "${nets[@]}"; do
  IFS='|' read -r name job extra <<<"$net"
  for rate in $RATES; do
    "$C/fault.sh" unshape all
    "$C/fault.sh" shape all --rate "$rate"
    for n in $NODES; do
      # shellcheck disable=SC2086
      out=$("$C/mpirun.sh" -np "$n" --map-by ppr:1:node -x OMP_NUM_THREADS build/scorch --threads 1 bench train \
            --config "$job" --set training.batch_size=$((PER_RANK * n)) --steps "$STEPS" --warmup 2 $extra 2>/dev/null)
      for ov in on off; do
        read -r ips step comm total <<<"$(awk -v ov="$ov" '$1 == ov {print $2, $3, $8, $5+$6+$7+$8+$9}' <<<"$out")"
        printf "%-12s %-7s %-6s %-8s %10s %9s %12s %7.1f%%\n" "$name" "$rate" "$n" "$ov" "$ips" "$step" "$comm" \
          "$(awk -v c="$comm" -v t="$total" 'BEGIN {print (t > 0 ? 100 * c / t : 0)}')"
      done
    done
  done
done
"$C/fault.sh" unshape all

if [[ $SKIP != *allreduce* ]]; then
  for rate in $RATES unlimited; do
    "$C/fault.sh" unshape all
    [[ $rate != unlimited ]] && "$C/fault.sh" shape all --rate "$rate"
    echo
    echo "# 2. all-reduce between 2 nodes (1 rank each), link $rate"
    # Up to 16 MiB below 1 Gbit/s (64 MiB takes 11 s a pass at 100 Mbit/s).
    max=64M
    [[ $rate =~ ^[0-9]+mbit$ ]] && max=16M
    "$C/mpirun.sh" -np 2 --map-by ppr:1:node build/scorch bench allreduce --max-bytes $max --iters 5 --warmup 2 2>/dev/null
  done
  "$C/fault.sh" unshape all
fi

if [[ $SKIP != *farm* ]]; then
  echo
  echo "# 3. the farm on 2 nodes x 1 rank, node2 held to ${SLOW_PCT}% of a core"
  build/scorch prepare mixture --config jobs/gmm2d_analytic.toml --out "$work/pts.h5" --count 2048 >/dev/null
  cat >"$work/job.toml" <<JOB
[training]
batch_size = 64
n_iters = 20
snapshot_freq = 20
[model]
name = "mlp"
nf = 128
num_res_blocks = 3
dropout = 0.0
num_scales = 200
[data]
dim = 2
path = "$work/pts.h5"
[eval]
batch_size = 32
num_samples = 1536
JOB
  build/scorch train --config "$work/job.toml" --workdir "$work/run" >/dev/null 2>&1
  "$C/fault.sh" slow node2 "$SLOW_PCT"
  printf "%-8s %9s %16s %16s\n" dealing "wall s" "batches node1" "batches node2"
  for balance in static dynamic; do
    rm -rf "$work/run/samples"
    t0=$(date +%s.%N)
    "$C/mpirun.sh" -np 2 --map-by ppr:1:node -x OMP_NUM_THREADS build/scorch sample --workdir "$work/run" \
      --set eval.balance=$balance >/dev/null 2>&1
    wall=$(echo "$(date +%s.%N) - $t0" | bc)
    per=$(/usr/bin/python3 -c "import json,glob; m=json.load(open(glob.glob('$work/run/samples/*/manifest.json')[0])); print(*m['last_run']['batches_per_rank'])")
    read -r b1 b2 <<<"$per"
    printf "%-8s %9.1f %16s %16s\n" "$balance" "$wall" "$b1" "$b2"
  done
  "$C/fault.sh" unslow node2
fi
