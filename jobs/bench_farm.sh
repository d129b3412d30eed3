#!/usr/bin/env bash
# Sampler-farm figures (README, "Sampler farm"): samples/s on 1 and 2 ranks for a PC and the
# ODE sampler, with dynamic and static dealing; feature-statistics throughput; the peak
# memory per rank of a 256x256 run. Needs the demo's run (bash jobs/demo.sh) for the model
# and the classifier. Usage: bash jobs/bench_farm.sh [RUN]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source jobs/setup.sh --torch debian
RUN=${1:-runs/fashion_mnist}
export OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$RUN/checkpoints" "$RUN/config.toml" "$tmp/"
rate() { grep -o "[0-9.]* [a-z]*/s, NFE per item [0-9.]* (min [0-9]*, max [0-9]*); batches per rank:.*" | tail -n 1; }

echo "| sampler | ranks | dealing | samples/s, NFE, batches per rank |"
echo "|---|---|---|---|"
for sampler in "pc 64 --set model.num_scales=50" "ode 64 --set sampling.method=ode --set sampling.rtol=1e-3 --set sampling.atol=1e-3"; do
  read -r name n sets <<<"$sampler"
  for ranks in 1 2; do
    for balance in dynamic static; do
      [[ $ranks == 1 && $balance == static ]] && continue
      rm -rf "$tmp/samples"
      line=$(mpirun --oversubscribe -np "$ranks" build/scorch sample --workdir "$tmp" $sets \
        --set eval.num_samples="$n" --set eval.batch_size=4 --set eval.balance=$balance 2>&1 | rate)
      echo "| $name | $ranks | $balance | $line |"
    done
  done
done

echo
echo "feature statistics (scorch classifier, 60,000 training images, batches of 1000):"
for ranks in 1 2; do
  mpirun --oversubscribe -np "$ranks" build/scorch eval fid-stats --config jobs/fashion_mnist.toml \
    --feature-net "$RUN/classifier.h5" --data data/prepared/fashion_mnist_train.h5 --out "$tmp/s$ranks.npz" \
    --set eval.batch_size=1000 2>&1 | grep -o "features of .*overall, F = [0-9]*)" | sed "s/^/  $ranks rank(s): /"
done

echo
echo "peak memory of a 256x256x3 run (tiny U-Net, 2 steps, 2 ranks, batches of 16):"
# Training data: the demo's own pictures, centre-cropped and resized to 256x256.
mkdir -p "$tmp/pngs"
for i in 1 2 3 4; do cp "$RUN/loss.png" "$tmp/pngs/loss$i.png"; done
build/scorch prepare images --dir "$tmp/pngs" --resolution 256 --out "$tmp/img256.h5" >/dev/null
cat > "$tmp/big.toml" <<TOML
[model]
name = "unet"
nf = 8
ch_mult = [1, 1, 1, 1, 1]
num_res_blocks = 1
attn_resolutions = [16]
num_scales = 2
[data]
path = "$tmp/img256.h5"
image_size = 256
num_channels = 3
[training]
batch_size = 2
n_iters = 1
snapshot_freq = 1
[eval]
batch_size = 16
TOML
for n in 64 512; do
  rm -rf "$tmp/big/samples"
  [[ -d $tmp/big/checkpoints ]] || build/scorch train --config "$tmp/big.toml" --workdir "$tmp/big" >/dev/null 2>&1
  mpirun --oversubscribe -np 2 build/scorch sample --workdir "$tmp/big" --set eval.num_samples=$n 2>&1 \
    | grep -o "peak resident memory per rank: .*" | sed "s/^/  $n samples: /"
done
