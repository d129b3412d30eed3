# Shared by the sbatch scripts (sourced): the scorch binary, threads per rank, the launcher,
# and the stop-signal forwarding. Inputs (environment): JOB, WORKDIR, SCORCH_ARGS (extra scorch
# options, split on spaces), SCORCH_BIN (default build/scorch), SCORCH_LAUNCH (srun | mpirun).
set -uo pipefail
: "${JOB:?set JOB=jobs/X.toml}" "${WORKDIR:?set WORKDIR=DIR}"
SCORCH=${SCORCH_BIN:-build/scorch}
read -r -a EXTRA <<<"${SCORCH_ARGS:-}"
# Threads per rank from --cpus-per-task (one intra-op thread per core the rank owns).
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# PMIx clients read the job's data over the slurmstepd socket (gds "hash") rather than from
# the shared-memory store (gds ds21/ds12). After a node failure the requeued job restarts with
# the same job and step ids while the killed step's store may linger on the surviving node,
# and a client mapping it crashed in MPI_Init (seen on the namespace cluster: SIGSEGV at
# address 0 on node1, 2 s into the restart; PMIx's ds21 lock set-up has a history of this).
# The hash store costs nothing that matters at a few ranks per node. Set PMIX_MCA_gds to
# override.
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash}
echo "scorch/slurm: job ${SLURM_JOB_ID:-?} ($SLURM_JOB_NAME) restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?}:" \
     "${SLURM_NTASKS:-1} ranks x ${OMP_NUM_THREADS} threads, $(date -Iseconds)"

# Runs one scorch command on every rank of the allocation. One rank per GPU: each rank
# takes the GPU of its node-local rank (dist.device = auto). With srun --kill-on-bad-exit,
# a rank that dies ends the step at once. SIGUSR1/SIGTERM that reach this batch shell
# (sbatch --signal=B:USR1@T, scancel --signal=USR1 --batch, pre-emption) are passed on to
# the ranks as SIGUSR1 by jobs/launch.sh; they checkpoint and exit with status 3.
scorch_run() {
  local launch=("${SCORCH_SLURM_DIR:-slurm}/../jobs/launch.sh")
  if [[ ${SCORCH_LAUNCH:-srun} == srun ]]; then
    "${launch[@]}" srun --mpi=pmix --kill-on-bad-exit=1 "$SCORCH" "$@" &
  else
    "${launch[@]}" mpirun "$SCORCH" "$@" &
  fi
  local pid=$! rc
  # Bash runs traps only between commands: wait in the background child, pass signals on.
  trap "kill -USR1 $pid" USR1 TERM
  while true; do
    wait "$pid"
    rc=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  return "$rc"
}

# The state scorch train recorded in <workdir>/status.json (running | finished | stopped | failed).
train_state() {
  sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' "$WORKDIR/status.json" 2>/dev/null | head -n 1
}

# After a farm command (sample, eval): status 3 means a stop signal ended it with its finished
# batches on disk; requeue the job (the rerun skips them) and end this launch. Any other
# failure ends the job with that status; 0 continues.
requeue_if_stopped() {
  local rc=$1
  if (( rc == 3 )); then
    echo "scorch/slurm: stopped with finished batches on disk; requeueing job $SLURM_JOB_ID to resume"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
  (( rc == 0 )) || exit "$rc"
}
