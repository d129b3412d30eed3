#!/usr/bin/env bash
# NFE and wall time of the probability-flow ODE sampler and of the likelihood against the
# RK45 tolerance (1e-3, 1e-4, 1e-5), on the exact 2-D mixture (jobs/gmm2d_analytic.toml)
# and on the trained Fashion-MNIST model of jobs/demo.sh (if present), 2 ranks; then the
# NFE of PC sampler configurations. Usage: bash jobs/bench_ode.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source jobs/setup.sh --torch debian
export OMP_NUM_THREADS=1
MPI=(mpirun --oversubscribe -np 2)
out=$(mktemp -d)
GMM=jobs/gmm2d_analytic.toml
[[ -f data/prepared/gmm2d_points.h5 ]] || build/scorch prepare mixture --config $GMM --out data/prepared/gmm2d_points.h5 --count 1000

timed() {  # prints "<seconds> <last line of output>"
  local t0 t1 line
  t0=$(date +%s.%N)
  line=$("$@" 2>/dev/null | grep -E "NFE" | tail -n 1)
  t1=$(date +%s.%N)
  printf "%6.1f s  %s\n" "$(echo "$t1 - $t0" | bc)" "$line"
}

echo "== exact 2-D mixture (VP): ODE sampler, 10000 samples; likelihood, 1000 points =="
for tol in 1e-3 1e-4 1e-5; do
  echo "tol $tol sample: $(timed "${MPI[@]}" build/scorch sample --config $GMM --workdir "$out/gmm" \
        --set sampling.method=ode --set sampling.rtol=$tol --set sampling.atol=$tol)"
  echo "tol $tol bpd:    $(timed "${MPI[@]}" build/scorch eval bpd --config $GMM --workdir "$out/gmm" \
        --set eval.rtol=$tol --set eval.atol=$tol)"
done

RUN=runs/fashion_mnist
if [[ -d $RUN/checkpoints ]]; then
  echo "== Fashion-MNIST demo model: ODE sampler, 16 samples; likelihood, 16 test images =="
  for tol in 1e-3 1e-4 1e-5; do
    ckpt=$(ls "$RUN"/checkpoints/ckpt_*.h5 | sort | tail -n 1)
    common=(--ckpt "$ckpt" --workdir "$out/fm" --set eval.batch_size=8 --set eval.num_samples=16 --set eval.bpd_num_images=16)
    echo "tol $tol sample: $(timed "${MPI[@]}" build/scorch sample "${common[@]}" --set sampling.method=ode \
          --set sampling.rtol=$tol --set sampling.atol=$tol)"
    echo "tol $tol bpd:    $(timed "${MPI[@]}" build/scorch eval bpd "${common[@]}" --set eval.rtol=$tol \
          --set eval.atol=$tol)"
  done
fi

echo "== PC samplers on the exact 2-D mixture (N = 1000, 10000 samples) =="
for pc in euler_maruyama:none reverse_diffusion:langevin ancestral_sampling:ald none:langevin; do
  p=${pc%%:*} c=${pc##*:}
  echo "$p + $c: $(timed "${MPI[@]}" build/scorch sample --config $GMM --workdir "$out/gmm" \
        --set sampling.predictor=$p --set sampling.corrector=$c --set model.num_scales=1000)"
done
rm -rf "$out"
