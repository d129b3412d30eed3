#!/usr/bin/env bash
# The main job: installs and builds scorch, converts Fashion-MNIST to HDF5, trains a small
# VP-SDE U-Net on 2 MPI ranks (jobs/fashion_mnist.toml), samples a grid of images and
# measures test-set bits/dim on a subset. Idempotent: a second run reuses the build, the
# data, the finished training and any samples/eval already written for the last checkpoint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source jobs/setup.sh

JOB=jobs/fashion_mnist.toml
RUN=${SCORCH_RUN:-runs/fashion_mnist}
DATA=data/prepared
RANKS=2
export OMP_NUM_THREADS=1  # one intra-op thread per rank: 2 ranks on 2 cores
MPIRUN=(mpirun --oversubscribe -np "$RANKS")
t0=$(date +%s)

if [[ ! -f $DATA/fashion_mnist_train.h5 || ! -f $DATA/fashion_mnist_test.h5 ]]; then
  build/scorch prepare fashion-mnist --out "$DATA"
fi

t_train=$(date +%s)
# Through jobs/launch.sh, Ctrl-C checkpoints the run (rerun this script to resume it).
jobs/launch.sh mpirun --oversubscribe -np "$RANKS" build/scorch train --config "$JOB" --workdir "$RUN"
t_train=$(( $(date +%s) - t_train ))

ckpt=$(ls "$RUN"/checkpoints/ckpt_*.h5 | sort | tail -n 1)
step=$(basename "$ckpt" .h5); step=${step#ckpt_}
samples="$RUN/samples/samples_$step"
if [[ ! -f $samples.png ]]; then
  "${MPIRUN[@]}" build/scorch sample --workdir "$RUN"
fi
mkdir -p "$RUN/eval"
bpd_file="$RUN/eval/bpd_$step.h5"
if [[ ! -f $bpd_file || ! -f $RUN/eval/bpd_$step.txt ]]; then
  "${MPIRUN[@]}" build/scorch eval bpd --workdir "$RUN" | tee "$RUN/eval/bpd_$step.txt.tmp"
  mv "$RUN/eval/bpd_$step.txt.tmp" "$RUN/eval/bpd_$step.txt"
fi

echo
build/scorch preview "$samples.h5" --count 4
cat <<SUMMARY

scorch demo: done in $(( $(date +%s) - t0 )) s (training ${t_train} s on $RANKS ranks)
  config       $RUN/config.toml
  checkpoint   $ckpt
  train log    $RUN/train_log.csv
  samples      $samples.h5
  sample grid  $samples.png
  bits/dim     $bpd_file
  $(tail -n 1 "$RUN/eval/bpd_$step.txt")
SUMMARY
