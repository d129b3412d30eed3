#!/usr/bin/env bash
# Runs a launcher (mpirun or srun) so that scorch stops cleanly on any stop signal:
#   jobs/launch.sh mpirun [mpirun options] scorch ARGS...
#   jobs/launch.sh srun --mpi=pmix [srun options] scorch ARGS...
# Open MPI's mpirun turns SIGTERM and SIGINT (Ctrl-C) into an abort: it SIGKILLs the ranks
# about a second later, checkpoint written or not, and exits 1; only SIGUSR1/SIGUSR2 reach the
# ranks as signals (srun forwards those too). So the launcher runs in its own session (the
# terminal's Ctrl-C reaches only this script), SIGTERM/SIGINT/SIGUSR1 become one SIGUSR1 for
# it, and the script exits with the launcher's status: 3 when scorch checkpointed and stopped.
# A run that cannot say so itself (a rank or a whole node killed, a watchdog abort) leaves
# <workdir>/status.json at "running": when the launcher fails, this script marks it
# "failed" with the launcher's exit status, so that whoever reads it sees a dead run.
set -uo pipefail
(($# >= 2)) || { echo "usage: jobs/launch.sh mpirun|srun [options] scorch ARGS..." >&2; exit 2; }
setsid "$@" &
pid=$!
stop() {
  echo "jobs/launch.sh: $1: asking the ranks to checkpoint and stop (SIGUSR1 to $(basename "$2"))" >&2
  kill -USR1 "$pid" 2>/dev/null
}
trap "stop SIGTERM $1" TERM
trap "stop SIGINT $1" INT
trap "stop SIGUSR1 $1" USR1
while true; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break  # wait was interrupted by a trap: keep waiting
done
# The workdir of a scorch train command (--workdir DIR or --workdir=DIR), if any.
workdir=""
prev=""
is_train=0
for a in "$@"; do
  [[ $a == train ]] && is_train=1
  [[ $prev == --workdir ]] && workdir=$a
  [[ $a == --workdir=* ]] && workdir=${a#--workdir=}
  prev=$a
done
status=$workdir/status.json
if ((rc != 0 && is_train)) && [[ -n $workdir && -f $status ]] && grep -q '"state": *"running"' "$status"; then
  tmp=$(mktemp "$status.XXXXXX")
  sed -e 's/"state": *"running"/"state": "failed"/' -e "s/\"exit_code\": *[-0-9]*/\"exit_code\": $rc/" \
      -e "s|\"message\": *\"[^\"]*\"|\"message\": \"$(basename "$1") exited with status $rc while the run was running: a rank or a node died, or a watchdog ended the job (jobs/launch.sh)\"|" \
      "$status" > "$tmp" && mv -f "$tmp" "$status"
  echo "jobs/launch.sh: $(basename "$1") exited with status $rc; marked $status failed" >&2
fi
exit "$rc"
