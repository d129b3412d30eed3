#!/usr/bin/env bash
# The main job: installs and builds scorch, converts Fashion-MNIST to HDF5, trains a small
# VP-SDE U-Net on 2 MPI ranks (jobs/fashion_mnist.toml), draws its loss curve, samples a grid
# of images through the farm, trains scorch's own classifier and reports the samples' FID
# against the test split with its features, and measures test-set bits/dim on a subset.
# Idempotent: a second run reuses the build, the data, the finished training, the classifier,
# the reference statistics and every finished batch of samples, features and bits/dim.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
t0=$(date +%s)
# SCORCH_TORCH=pip runs the same demo with the CUDA build against PyPI's torch 2.x (build-cuda;
# on the CPU without a GPU), e.g. with SCORCH_RUN=runs/fashion_mnist_torch2 beside the first.
source jobs/setup.sh --torch "${SCORCH_TORCH:-debian}"
BIN=$SCORCH_BUILD_DIR/scorch

JOB=jobs/fashion_mnist.toml
RUN=${SCORCH_RUN:-runs/fashion_mnist}
DATA=data/prepared
RANKS=2
export OMP_NUM_THREADS=1  # one intra-op thread per rank: 2 ranks on 2 cores
MPIRUN=(mpirun --oversubscribe -np "$RANKS")
QUIET='^\[.*\] (\[rank [0-9]+\] )?info .*: [0-9]+/[0-9]+ \|'  # progress lines, kept in the logs only

if [[ ! -f $DATA/fashion_mnist_train.h5 || ! -f $DATA/fashion_mnist_test.h5 ]]; then
  "$BIN" prepare fashion-mnist --out "$DATA"
fi
mkdir -p "$RUN/logs" "$RUN/eval"

t_train=$(date +%s)
# Through jobs/launch.sh, Ctrl-C checkpoints the run (rerun this script to resume it).
echo "scorch demo: training (log: $RUN/logs/train.log)"
jobs/launch.sh mpirun --oversubscribe -np "$RANKS" "$BIN" train --config "$JOB" --workdir "$RUN" \
  > "$RUN/logs/train.log" 2>&1 || { tail -n 30 "$RUN/logs/train.log"; exit 1; }
grep -E "^train: |resumed from|stop requested" "$RUN/logs/train.log" | tail -n 2 || true
t_train=$(( $(date +%s) - t_train ))
"$BIN" plot --workdir "$RUN"

t_sample=$(date +%s)
"${MPIRUN[@]}" "$BIN" sample --workdir "$RUN" 2>&1 | tee "$RUN/logs/sample.log" | grep -Ev "$QUIET" | tail -n 4
t_sample=$(( $(date +%s) - t_sample ))
grid=$(grep -o "grid of the first [0-9]* -> .*" "$RUN/logs/sample.log" | sed 's/.*-> //')

# FID with scorch's own classifier (Inception was not made for 28x28 grayscale clothes).
CLF=$RUN/classifier.h5
if [[ ! -f $CLF ]]; then
  "${MPIRUN[@]}" "$BIN" train-classifier --config "$JOB" --out "$CLF" 2>&1 \
    | tee "$RUN/logs/classifier.log" | grep -Ev "$QUIET" | tail -n 1
fi
REF=$RUN/eval/fashion_mnist_test_stats.npz
if [[ ! -f $REF ]]; then
  "${MPIRUN[@]}" "$BIN" eval fid-stats --config "$JOB" --feature-net "$CLF" \
    --data "$DATA/fashion_mnist_test.h5" --out "$REF" --set eval.batch_size=500 2>&1 | tail -n 1
fi
"${MPIRUN[@]}" "$BIN" eval fid --workdir "$RUN" --feature-net "$CLF" --ref "$REF" 2>&1 \
  | tee "$RUN/logs/fid.log" | grep -E "^fid |FID of|Inception Score|KID"
"${MPIRUN[@]}" "$BIN" eval bpd --workdir "$RUN" 2>&1 | tee "$RUN/logs/bpd.log" | grep -E "^eval: [0-9]+ items"

echo
"$BIN" preview "$(ls "$(dirname "$grid")"/batch_*.h5 | head -n 1)" --count 4
cat <<SUMMARY

scorch demo: done in $(( $(date +%s) - t0 )) s (training ${t_train} s, sampling ${t_sample} s, on $RANKS ranks)
  config       $RUN/config.toml
  checkpoint   $(ls "$RUN"/checkpoints/ckpt_*.h5 | sort | tail -n 1)
  loss curve   $RUN/loss.png
  samples      $(dirname "$grid")/  (batch_*.h5, manifest.json)
  sample grid  $grid
  classifier   $CLF ($(grep -o "test accuracy [0-9.]*%" "$RUN/logs/classifier.log" 2>/dev/null || echo "trained earlier"))
  FID          $(grep -E "^fid " "$RUN/logs/fid.log")  ($(sed -n 's/.*"num_samples": \([0-9]*\).*/\1/p' "$(dirname "$grid")/manifest.json") samples vs the 10,000 test images, scorch classifier features)
  bits/dim     $(grep -E "^bpd " "$RUN/logs/bpd.log")  ($(grep -o "[0-9]* items x [0-9]* repeats" "$RUN/logs/bpd.log" | head -n 1))
SUMMARY
