#!/usr/bin/env bash
# Submits train -> sample -> evaluate as three Slurm jobs chained with --dependency=afterok
# and prints their ids (one per line: train, sample, eval).
#   JOB=jobs/X.toml WORKDIR=DIR [SCORCH_ARGS="--set training.n_iters=10 ..."] slurm/pipeline.sh [sbatch options]
# The sbatch options (e.g. --partition=gpu --nodes=2 --ntasks-per-node=8 --gpus-per-node=8
# --time=24:00:00) apply to every stage. Logs go to WORKDIR/logs/<stage>-<jobid>.out. Run from
# the scorch checkout (or set SCORCH_BIN and SCORCH_SLURM_DIR).
set -euo pipefail
: "${JOB:?set JOB=jobs/X.toml}" "${WORKDIR:?set WORKDIR=DIR}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export JOB WORKDIR SCORCH_ARGS="${SCORCH_ARGS:-}" SCORCH_SLURM_DIR="${SCORCH_SLURM_DIR:-$here}"
export SCORCH_BIN="${SCORCH_BIN:-$(cd "$here/.." && pwd)/build/scorch}"
mkdir -p "$WORKDIR/logs"
logs=$(cd "$WORKDIR/logs" && pwd)
submit() {  # stage script dependency [sbatch options...]
  local stage=$1 script=$2 dep=$3
  shift 3
  local depopt=()
  [[ -n $dep ]] && depopt=(--dependency="afterok:$dep")
  sbatch --parsable --export=ALL --output="$logs/$stage-%j.out" "${depopt[@]}" "$@" "$here/$script" | cut -d';' -f1
}
# The user's sbatch options come after the scripts' own #SBATCH defaults and win over them.
train=$(submit train train.sbatch "" "$@")
sample=$(submit sample sample.sbatch "$train" "$@")
eval_id=$(submit eval eval.sbatch "$sample" "$@")
echo "$train"
echo "$sample"
echo "$eval_id"
