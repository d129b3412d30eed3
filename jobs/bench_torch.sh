#!/usr/bin/env bash
# CPU speed of two builds of scorch side by side, by default Debian's LibTorch 1.13 (./build)
# against PyPI's CUDA LibTorch 2.x run on the CPU (./build-cuda): `bench train` (images/s of
# whole steps, overlap on, one rank) and `bench sample` (images/s of the PC sampler over its
# first steps) of the demo's model (jobs/fashion_mnist.toml) and of a small DDPM++ (the CIFAR-10
# VP job at nf=32), each as three alternating pairs (A, B, A, B, A, B) so that drift of the
# machine falls on both; prints every pair and the median ratio B/A.
# Usage: bash jobs/bench_torch.sh [A_BUILD [B_BUILD]]     (THREADS=cores by default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
A=${1:-build}
B=${2:-build-cuda}
for b in "$A" "$B"; do
  [[ -x $b/scorch ]] || { echo "bench_torch: no $b/scorch (bash jobs/setup.sh, bash jobs/setup.sh --torch pip)" >&2; exit 2; }
done
THREADS=${THREADS:-$(nproc)}
PAIRS=${PAIRS:-3}
DEMO=(--config jobs/fashion_mnist.toml)
DDPMPP=(--config jobs/cifar10_vp_ddpmpp_continuous.toml --set model.nf=32)
# what: train|sample; prints images/s.
measure() {
  local bin=$1/scorch what=$2
  shift 2
  if [[ $what == train ]]; then
    "$bin" --threads "$THREADS" bench train "$@" --set dist.device=cpu --set training.batch_size=16 --synthetic 64 \
      --steps 4 --warmup 1 2>/dev/null | awk '$1 == "on" {print $2}'
  else
    # images/s from the seconds per batch of 16 (the printed images/s has two decimals only).
    "$bin" --threads "$THREADS" bench sample "$@" --set dist.device=cpu --batch 16 --method pc --max-steps 10 2>/dev/null |
      awk '$1 ~ /^pc/ {printf "%.4f\n", 16 / $5}'
  fi
}
echo "# bench_torch: A = $A ($("$A/scorch" --version | sed -n 's/^libtorch: //p')), B = $B" \
     "($("$B/scorch" --version | sed -n 's/^libtorch: //p')), $THREADS threads, $PAIRS alternating pairs"
printf "%-8s %-7s %s\n" model bench "images/s A | B (pairs), median ratio B/A"
for model in demo ddpmpp; do
  for what in train sample; do
    args=("${DEMO[@]}")
    [[ $model == ddpmpp ]] && args=("${DDPMPP[@]}")
    line="" ratios=()
    for ((i = 0; i < PAIRS; i++)); do
      a=$(measure "$A" "$what" "${args[@]}")
      b=$(measure "$B" "$what" "${args[@]}")
      line+=" ${a:-?}|${b:-?}"
      ratios+=("$(awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN {print (a > 0 ? b / a : 0)}')")
    done
    med=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    printf "%-8s %-7s %s  ratio %.3f\n" "$model" "$what" "$line" "$med"
  done
done
