#!/usr/bin/env bash
# Runs a command inside one node of the cluster (tests/cluster/up.sh):
#   tests/cluster/exec.sh node2 hostname
#   tests/cluster/exec.sh node1 srun --mpi=pmix -N 2 --ntasks-per-node=2 build/scorch train ...
# The command sees the node's hostname, /tmp, /dev/shm, /etc/hosts and network, the
# caller's environment and working directory (/ when that is node-private), and SLURM_CONF
# of the cluster unless the caller set one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# >= 2)) || cluster_die "usage: exec.sh NODE CMD [ARGS...]   (NODE: node1..node$(cluster_nodes))"
export SLURM_CONF=${SLURM_CONF:-$cluster_dir/slurm/slurm.conf}
cluster_enter "$@"
