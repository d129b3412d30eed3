#!/usr/bin/env bash
# The Slurm pipeline on a real single-node cluster (tests/slurm/cluster.sh): submits
# slurm/pipeline.sh with a tiny job and checks the checkpoint, the samples and the evaluation;
# then a requeue: the training job is signalled mid-run (SIGUSR1 to the batch script, as
# --signal=B:USR1@T does), checkpoints, requeues itself, resumes from that checkpoint and ends
# at the right step with every step trained and logged once. Prints the timings.
#   tests/slurm/test_slurm.sh [path/to/scorch]        exit 0 pass, 1 fail, 77 skipped (no Slurm)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scorch=$(realpath "${1:-$repo/build/scorch}")
for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || { echo "SKIP: $b not installed (apt-get install slurm-wlm munge)"; exit 77; }
done
[[ $(id -u) -eq 0 ]] || { echo "SKIP: slurmd of the private cluster must run as root"; exit 77; }
work=$(mktemp -d /tmp/scorch_slurm.XXXXXX)
fail=0
check() {  # description, then a command that must succeed
  local what=$1
  shift
  if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; fail=1; fi
}
cleanup() {
  "$repo/tests/slurm/cluster.sh" stop "$work/cluster" || true
  [[ $fail -eq 0 ]] && rm -rf "$work"
}
trap cleanup EXIT
eval "$("$repo/tests/slurm/cluster.sh" start "$work/cluster")" || { echo "FAIL: the cluster did not start"; exit 1; }
export SCORCH_BIN=$scorch OMPI_MCA_btl_vader_single_copy_mechanism=none

"$scorch" prepare mixture --config "$repo/jobs/gmm2d_analytic.toml" --out "$work/pts.h5" --count 2048 >/dev/null
cat >"$work/job.toml" <<JOB
[training]
batch_size = 32
n_iters = 60
snapshot_freq = 20
log_freq = 10
[model]
name = "mlp"
nf = 32
num_res_blocks = 2
dropout = 0.0
num_scales = 40
ema_rate = 0.9
[optim]
lr = 2e-3
warmup = 0
[data]
dim = 2
path = "$work/pts.h5"
[eval]
batch_size = 16
num_samples = 40
bpd_num_images = 24
bpd_num_repeats = 1
rtol = 1e-4
atol = 1e-4
[checkpoint]
keep = 2
JOB

wait_jobs() {  # job ids...: until none is pending or running (at most 300 s)
  local ids
  ids=$(IFS=,; echo "$*")
  for _ in $(seq 1500); do
    squeue -h -j "$ids" 2>/dev/null | grep -q . || return 0
    if squeue -h -j "$ids" -o %r 2>/dev/null | grep -Eq "PartitionConfig|BadConstraints|ReqNodeNotAvail"; then
      echo "  jobs can never start:"; squeue -j "$ids"; sinfo -N -o "%N %c %m %T"; return 1
    fi
    sleep 0.2
  done
  echo "  timed out waiting for jobs $ids"; squeue; return 1
}
job_field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# Slurm holds a requeued job for two minutes (BeginTime); release job $1 sooner to keep the
# test short, once it is pending again and its old step has been cleaned up (its PMIx
# socket is gone).
release_requeued() {
  for _ in $(seq 600); do
    if [[ $(job_field "$1" Restarts) -ge 1 && $(job_field "$1" JobState) == PENDING ]]; then
      sleep 5
      scontrol update JobId="$1" StartTime=now
      return
    fi
    sleep 0.1
  done
}

echo "== pipeline: train -> sample -> eval"
t0=$(date +%s.%N)
mapfile -t ids < <(cd "$repo" && JOB=$work/job.toml WORKDIR=$work/run slurm/pipeline.sh)
check "pipeline.sh printed three job ids (${ids[*]})" test ${#ids[@]} -eq 3
wait_jobs "${ids[@]}"
pipeline_s=$(echo "$(date +%s.%N) - $t0" | bc)
for i in "${ids[@]}"; do
  check "job $i ($(job_field "$i" JobName)) completed with exit code 0:0" \
    test "$(job_field "$i" JobState)/$(job_field "$i" ExitCode)" = "COMPLETED/0:0"
done
check "final checkpoint at step 60" test -f "$work/run/checkpoints/ckpt_000000060.h5"
check "checkpoint.keep = 2 left two checkpoints" test "$(ls "$work/run/checkpoints" | wc -l)" -eq 2
check "samples of step 60 (a complete farm run)" grep -q '"complete": true' "$work"/run/samples/s000000060-*/manifest.json
check "bits/dim of step 60" test -f "$work/run/eval/bpd_000000060.h5"
check "eval log reports bpd" grep -q "bpd [0-9]" "$work/run/logs/eval-${ids[2]}.out"
check "status.json says finished" grep -q '"state": "finished"' "$work/run/status.json"
check "scorch info reads the checkpoint" bash -c "'$scorch' info --workdir '$work/run' >/dev/null"

echo "== requeue: SIGUSR1 to the training job mid-run"
t0=$(date +%s.%N)
mapfile -t ids < <(cd "$repo" && JOB=$work/job.toml WORKDIR=$work/rq \
  SCORCH_ARGS="--set training.n_iters=6000 --set training.snapshot_freq=100000 --set training.log_freq=100" \
  slurm/pipeline.sh)
train=${ids[0]}
for _ in $(seq 1500); do
  [[ -f $work/rq/train_log.csv && $(wc -l <"$work/rq/train_log.csv") -gt 3 ]] && break
  sleep 0.1
done
scancel --signal=USR1 --batch "$train"
release_requeued "$train"
wait_jobs "${ids[@]}"
requeue_s=$(echo "$(date +%s.%N) - $t0" | bc)
log=$(ls "$work"/rq/logs/train-"$train".out)
stopped_at=$(sed -n 's/.*checkpointing at step \([0-9]*\).*/\1/p' "$log" | head -n 1)
resumed_at=$(sed -n 's/.*resumed from .*ckpt_[0-9]*\.h5 at step \([0-9]*\).*/\1/p' "$log" | head -n 1)
check "the stopped run checkpointed (step ${stopped_at:-none})" test -n "$stopped_at"
check "the job requeued itself (Restarts=$(job_field "$train" Restarts))" test "$(job_field "$train" Restarts)" -eq 1
check "the restart saw SLURM_RESTART_COUNT=1" grep -q "restart 1 on" "$log"
check "it resumed at the stop step (${resumed_at:-none}): no step lost or trained twice" \
  test "${resumed_at:-x}" = "${stopped_at:-y}"
check "it ended at step 6000" test -f "$work/rq/checkpoints/ckpt_000006000.h5"
check "every logged step appears once" test -z "$(cut -d, -f1 "$work/rq/train_log.csv" | sort | uniq -d)"
check "log rows are the multiples of 100 up to 6000" \
  test "$(tail -n +2 "$work/rq/train_log.csv" | cut -d, -f1 | tr '\n' ' ')" = "$(seq -s ' ' 100 100 6000) "
for i in "${ids[@]}"; do
  check "job $i completed with exit code 0:0" test "$(job_field "$i" JobState)/$(job_field "$i" ExitCode)" = "COMPLETED/0:0"
done

echo "== requeue: SIGUSR1 to a sample job mid-run (the farm resumes from its finished batches)"
t0=$(date +%s.%N)
mkdir -p "$work/srq/logs" && cp -r "$work/run/checkpoints" "$work/srq/"
sample=$(cd "$repo" && JOB=$work/job.toml WORKDIR=$work/srq SCORCH_SLURM_DIR=$repo/slurm SCORCH_BIN=$scorch \
  SCORCH_ARGS="--set eval.num_samples=4000 --set eval.batch_size=50 --set model.num_scales=2000" \
  sbatch --parsable --export=ALL --output="$work/srq/logs/sample-%j.out" slurm/sample.sbatch | cut -d';' -f1)
for _ in $(seq 1500); do
  (( $(ls "$work"/srq/samples/*/batch_*.h5 2>/dev/null | wc -l) >= 6 )) && break
  sleep 0.1
done
scancel --signal=USR1 --batch "$sample"
release_requeued "$sample"
wait_jobs "$sample"
sample_rq_s=$(echo "$(date +%s.%N) - $t0" | bc)
log=$work/srq/logs/sample-$sample.out
done_before=$(sed -n 's/.*80 batches (\([0-9]*\) already done).*/\1/p' "$log" | tail -n 1)
check "the sample job requeued itself (Restarts=$(job_field "$sample" Restarts))" test "$(job_field "$sample" Restarts)" -eq 1
check "the restart skipped the finished batches (${done_before:-none} of 80)" test "${done_before:-0}" -ge 6
check "job $sample completed with exit code 0:0" \
  test "$(job_field "$sample" JobState)/$(job_field "$sample" ExitCode)" = "COMPLETED/0:0"
check "the run holds exactly 80 batches and says complete" bash -c "grep -q '\"complete\": true' $work/srq/samples/s000000060-*/manifest.json && \
  test \$(ls $work/srq/samples/s000000060-*/batch_*.h5 | wc -l) -eq 80"

echo "== figures"
echo "  submission to finished pipeline (60 steps, 40 samples, bpd on 24 points): ${pipeline_s} s"
echo "  requeue pipeline (6000 steps, one stop and restart): ${requeue_s} s; steps lost: $(( ${resumed_at:-0} - ${stopped_at:-0} ))"
echo "  sample job stopped and requeued (80 batches, ${done_before:-?} done before the restart): ${sample_rq_s} s"
[[ $fail -eq 0 ]] && echo "PASS" || { echo "FAIL (files kept in $work)"; exit 1; }
