#!/usr/bin/env bash
# Runs a launcher (mpirun or srun) so that scorch stops cleanly on any stop signal:
#   jobs/launch.sh mpirun [mpirun options] scorch ARGS...
#   jobs/launch.sh srun --mpi=pmix [srun options] scorch ARGS...
# Open MPI's mpirun turns SIGTERM and SIGINT (Ctrl-C) into an abort: it SIGKILLs the ranks
# about a second later, checkpoint written or not, and exits 1; only SIGUSR1/SIGUSR2 reach the
# ranks as signals (srun forwards those too). So the launcher runs in its own session (the
# terminal's Ctrl-C reaches only this script), SIGTERM/SIGINT/SIGUSR1 become one SIGUSR1 for
# it, and the script exits with the launcher's status: 3 when scorch checkpointed and stopped.
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
exit "$rc"
