#!/usr/bin/env bash
# Forward+backward cost of the paper's CIFAR-10 networks on the DSM loss (no optimizer, no
# all-reduce): time per image and peak memory at batch 8 on the CPU (all cores, one
# process; fp32 and bf16 autocast), printed side by side; on a machine whose LibTorch sees a GPU, also images/s
# at batch 128 in fp32 and bf16. Usage: bash jobs/bench_ncsnpp.sh [STEPS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x build/scorch ]] || source jobs/setup.sh --torch debian
STEPS=${1:-3}
THREADS=${THREADS:-$(nproc)}
run() {  # job device precision batch -> "ms/image images/s peakMiB"
  build/scorch --threads "$THREADS" bench net --config "jobs/$1.toml" --set dist.device="$2" --precision "$3" --batch "$4" \
    --steps "$STEPS" --warmup 1 2>/dev/null |
    awk '/forward\+backward/ {ms=$7; ips=$9} /peak RSS/ {rss=$4} END {print ms, ips, rss}'
}
printf "%-34s %-6s %-5s %6s %10s %10s %10s\n" job device prec batch ms/image images/s peakMiB
for job in cifar10_vp_ddpmpp_continuous cifar10_ve_ncsnpp_continuous; do
  for prec in fp32 bf16; do
    read -r ms ips rss < <(run "$job" cpu "$prec" 8)
    printf "%-34s %-6s %-5s %6s %10s %10s %10s\n" "$job" cpu "$prec" 8 "$ms" "$ips" "$rss"
  done
done
if build/scorch bench net --config jobs/cifar10_vp_ddpmpp_continuous.toml --set dist.device=cuda --steps 1 --warmup 0 --batch 1 \
     >/dev/null 2>&1; then
  for prec in fp32 bf16; do
    read -r ms ips rss < <(run cifar10_vp_ddpmpp_continuous cuda "$prec" 128)
    printf "%-34s %-6s %-5s %6s %10s %10s %10s\n" cifar10_vp_ddpmpp_continuous cuda "$prec" 128 "$ms" "$ips" "-"
  done
else
  echo "(no GPU visible to LibTorch: GPU rows skipped)"
fi
