#!/usr/bin/env bash
# Stops the cluster tests/cluster/up.sh started: every process in each node's namespaces
# (found by the node's UTS namespace, so the daemons, ranks and anything exec.sh started),
# then the holders (their namespaces and mounts end with them), the cluster's munged (by its
# pid file), the veth links and the bridge, and the CPU and memory cgroups. Nothing else is touched.
# Safe to run twice, and with no cluster up. Keeps the state folder's logs and shared/.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
n=$(cluster_nodes)
nodes=()
for d in "$cluster_dir"/node*; do [[ -f $d/uts ]] && nodes+=("$(basename "$d")"); done
kill_all() {  # signal, pids...
  local sig=$1
  shift
  (($#)) && kill "-$sig" "$@" 2>/dev/null
  return 0
}
for sig in TERM KILL; do
  pids=()
  for node in "${nodes[@]}"; do mapfile -t -O "${#pids[@]}" pids < <(cluster_node_pids "$node"); done
  ((${#pids[@]})) || break
  kill_all "$sig" "${pids[@]}"
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do [[ -e /proc/$p ]] && alive=1 && break; done
    ((alive)) || break
    sleep 0.1
  done
done
if [[ -f $cluster_dir/slurm/munged.pid ]]; then
  pid=$(cat "$cluster_dir/slurm/munged.pid")
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == munged ]] && kill "$pid" 2>/dev/null
  rm -f "$cluster_dir/slurm/munged.pid"
fi
for node in "${nodes[@]}"; do
  ip link del "sc-$node" 2>/dev/null
  for c in cpu memory; do
    [[ -d /sys/fs/cgroup/$c/scorch-$node ]] && rmdir "/sys/fs/cgroup/$c/scorch-$node" 2>/dev/null
  done
  rm -f "$cluster_dir/$node/pid" "$cluster_dir/$node/uts" "$cluster_dir/$node/ready"
done
ip link del "$cluster_bridge" 2>/dev/null
rm -f "$cluster_dir/nodes"
echo "tests/cluster: down (${#nodes[@]} nodes stopped${n:+; state kept in $cluster_dir})"
exit 0
