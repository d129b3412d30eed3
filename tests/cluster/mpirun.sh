#!/usr/bin/env bash
# Open MPI's mpirun across the cluster's nodes, run on node1 with everything set:
#   tests/cluster/mpirun.sh -np 4 --map-by ppr:2:node build/scorch train --config ...
# - the host list node1:S,...,nodeN:S (S = SCORCH_CLUSTER_SLOTS, default 2), unless the
#   arguments give --host/-H or --hostfile;
# - the launch agent tests/cluster/rsh_agent.sh (no sshd), no tree spawn;
# - TCP between nodes and shared memory within one, both restricted to the cluster network
#   (BTL and out-of-band traffic on 169.254.213.0/24: never loopback between nodes, never
#   another interface);
# - TCP keepalive on mpirun's links to its daemons after 5 s idle, 3 probes 2 s apart (Open
#   MPI's default waits 300 s + 9 x 20 s): a node cut off the network is noticed in ~11 s
#   and the job ends, as on a cluster tuned for it;
# - root and container settings (OMPI_ALLOW_RUN_AS_ROOT..., vader without CMA) and
#   mpi_yield_when_idle (the nodes share this machine's cores) exported to every rank.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
n=$(cluster_nodes)
((n > 0)) || cluster_die "no cluster is up (tests/cluster/up.sh N)"
slots=${SCORCH_CLUSTER_SLOTS:-2}
hosts=()
if ! printf '%s\n' "$@" | grep -Eqx -- "--host|-H|--hostfile|-hostfile|--machinefile"; then
  list=""
  for k in $(seq "$n"); do list+="${list:+,}node$k:$slots"; done
  hosts=(--host "$list")
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
exec "$cluster_repo/tests/cluster/exec.sh" node1 mpirun "${hosts[@]}" \
  --mca plm_rsh_agent "$cluster_repo/tests/cluster/rsh_agent.sh" --mca plm_rsh_no_tree_spawn 1 \
  --mca btl self,vader,tcp --mca btl_tcp_if_include "$cluster_cidr" --mca oob_tcp_if_include "$cluster_cidr" \
  --mca oob_tcp_keepalive_time 5 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3 \
  -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM -x OMPI_MCA_btl_vader_single_copy_mechanism \
  -x OMPI_MCA_mpi_yield_when_idle \
  "$@"
