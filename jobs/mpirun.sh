#!/usr/bin/env bash
# mpirun that stops scorch cleanly. Open MPI's mpirun turns SIGTERM and SIGINT (Ctrl-C) into an
# abort: it SIGKILLs the ranks about a second later, checkpoint written or not, and exits 1.
# Only SIGUSR1/SIGUSR2 reach the ranks as signals. This wrapper runs mpirun in its own session
# (so the terminal's Ctrl-C reaches only the wrapper), turns SIGTERM/SIGINT/SIGUSR1 into one
# SIGUSR1 for mpirun, waits, and exits with mpirun's status: 3 when scorch checkpointed and
# stopped, 0 when done. Usage: jobs/mpirun.sh [mpirun options] scorch ARGS...
set -uo pipefail
setsid mpirun "$@" &
pid=$!
stop() {
  echo "jobs/mpirun.sh: $1: asking the ranks to checkpoint and stop (SIGUSR1)" >&2
  kill -USR1 "$pid" 2>/dev/null
}
trap 'stop SIGTERM' TERM
trap 'stop SIGINT' INT
trap 'stop SIGUSR1' USR1
while true; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break  # wait was interrupted by a trap: keep waiting
done
exit "$rc"
