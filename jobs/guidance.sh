#!/usr/bin/env bash
# Guided and fast generation on Fashion-MNIST (issue 11's figures), on 2 MPI ranks:
#  1. trains the class-conditional VE U-Net of jobs/fashion_mnist_cond.toml (label dropout
#     0.1, so it also knows the unconditional score);
#  2. classifier-free guidance: 200 balanced samples (20 per class, DPM-Solver++ 20 steps)
#     per guidance scale w, scored by the demo's classifier: accuracy of the requested class
#     and FID / IS against the test set (scorch classifier features);
#  3. samplers: FID and accuracy versus NFE for RK45, DDIM, DPM-Solver++ and Heun at w = 1;
#  4. classifier guidance of the (unconditional) demo model with a noise-conditional classifier;
#  5. pictures: one column per class (100 samples) and an inpainting grid (right half unknown).
# Every step is skipped when its output exists (rerun to resume). Prints one table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source jobs/setup.sh --torch debian
export OMP_NUM_THREADS=1
JOB=jobs/fashion_mnist_cond.toml
RUN=${SCORCH_RUN:-runs/fashion_mnist_cond}
DEMO=runs/fashion_mnist
DATA=data/prepared
MPI=(mpirun --oversubscribe -np 2)
mkdir -p "$RUN/logs"
[[ -f $DATA/fashion_mnist_train.h5 ]] || build/scorch prepare fashion-mnist --out "$DATA"
if ! grep -q '"state": "finished"' "$RUN/status.json" 2>/dev/null; then
  echo "training the class-conditional model (log: $RUN/logs/train.log)"
  "${MPI[@]}" build/scorch train --config "$JOB" --workdir "$RUN" > "$RUN/logs/train.log" 2>&1
fi
CLF=$DEMO/classifier.h5
[[ -f $CLF ]] || "${MPI[@]}" build/scorch train-classifier --config jobs/fashion_mnist.toml --out "$CLF" | tail -n 1
REF=$DEMO/eval/fashion_mnist_test_stats.npz
if [[ ! -f $REF ]]; then
  mkdir -p "$DEMO/eval"
  "${MPI[@]}" build/scorch eval fid-stats --config jobs/fashion_mnist.toml --feature-net "$CLF" \
    --data "$DATA/fashion_mnist_test.h5" --out "$REF" --set eval.batch_size=500 | tail -n 1
fi
# One sample run and its evaluation: prints "<label> nfe <mean> fid ... acc ...".
measure() { measure_in "$RUN" "$@"; }
measure_in() {
  local run=$1 label=$2; shift 2
  "${MPI[@]}" build/scorch sample --workdir "$run" --set "$@" > "$RUN/logs/sample_$label.log" 2>&1
  local nfe
  nfe=$(grep -o "NFE per item [0-9.]*" "$RUN/logs/sample_$label.log" | head -n 1 | awk '{print $4}')
  local line
  line=$("${MPI[@]}" build/scorch eval fid --workdir "$run" --feature-net "$CLF" --ref "$REF" --set "$@" 2>&1 \
    | tee "$RUN/logs/fid_$label.log" | grep -E "^fid ")
  printf "%-28s NFE %-6s %s\n" "$label" "$nfe" "$line"
}
echo "== classifier-free guidance (DPM-Solver++ 20 steps, 200 balanced samples) =="
for w in 0 1 2 4; do measure "cfg_w$w" "sampling.guidance_scale=$w"; done
echo "== samplers at guidance scale 1 (200 balanced samples) =="
measure "rk45_tol1e-3" sampling.method=ode sampling.rtol=1e-3 sampling.atol=1e-3
for n in 10 20; do
  measure "ddim_$n" sampling.method=ddim "sampling.steps=$n"
  measure "dpm_solver_$n" sampling.method=dpm_solver "sampling.steps=$n"
done
measure "heun_5" sampling.method=heun sampling.steps=5
measure "heun_10" sampling.method=heun sampling.steps=10
measure "pc_em_250" sampling.method=pc
echo "== classifier guidance of the unconditional demo model (noise-conditional classifier, DPM-Solver++ 20) =="
NOISY=$DEMO/noisy_classifier.h5
[[ -f $NOISY ]] || "${MPI[@]}" build/scorch train-classifier --noise-conditional --config jobs/fashion_mnist.toml \
  --out "$NOISY" | tail -n 1
for s in 0 1 3; do
  measure_in "$DEMO" "clf_scale$s" "sampling.classifier=$NOISY" "sampling.classifier_scale=$s" \
    sampling.class_label=balanced sampling.method=dpm_solver sampling.steps=20 eval.num_samples=200 eval.batch_size=50
done
echo "== pictures =="
"${MPI[@]}" build/scorch sample --workdir "$RUN" --set eval.num_samples=100 sampling.guidance_scale=2 \
  eval.batch_size=50 sampling.method=pc | grep -E "grid|->"
"${MPI[@]}" build/scorch inpaint --workdir "$RUN" --data "$DATA/fashion_mnist_test.h5" --mask right-half --count 16 \
  --set sampling.class_label=none sampling.guidance_scale=0 sampling.method=pc eval.batch_size=8 | grep -E -e "->|input"
