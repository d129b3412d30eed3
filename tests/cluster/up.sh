#!/usr/bin/env bash
# A cluster of N nodes (default 2) on this one machine, for multi-node tests of scorch with
# real Open MPI and real Slurm:   tests/cluster/up.sh [N]      (idempotent)
#
# A node is a set of Linux namespaces made with unshare (no containers, no VMs):
#   - UTS: its own hostname, node1..nodeN;
#   - mount: private tmpfs on /tmp and /dev/shm, and its own /etc/hosts; every other path is
#     the host's, so the repository, the build and the cluster's shared/ folder are the same
#     files on every node (the repository is mounted back if it lies under /tmp);
#   - network: its own network namespace with loopback and one veth interface joined to a
#     bridge of the cluster's own (scorchbr0), at 169.254.213.K.
# Why separate network namespaces rather than the host's loopback: each node then has a link
# of its own, so a test can slow one node's link (tc), drop packets on it (nft) or cut it
# (link down) while the others stay up, as on a real cluster; Open MPI, PMIx and Slurm see
# one address per node. The addresses are IPv4 link-local, which is never routed off the
# link; the host holds no address on the bridge and there is no default route in a node, so
# no packet of the cluster leaves this machine, nor even reaches the host's own stack.
#
# Open MPI: mpirun runs on node1 and starts its daemons on the other nodes through
# tests/cluster/rsh_agent.sh (nsenter into the named node: no sshd). Slurm: one munged for
# the cluster (its key private to the cluster), slurmctld on node1 and one slurmd in each
# node, each on the standard ports of its own network namespace, so Debian's slurmd (built
# without --enable-multiple-slurmd) runs unchanged: every slurmd is alone on its "host".
# A CPU and a memory cgroup per node (cgroup v1 controllers, when there are) let fault.sh
# slow a node or give it less memory. tests/cluster/down.sh stops it all.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$cluster_repo/tests/slurm/slurm_conf.sh"
n=${1:-2}
[[ $n =~ ^[1-9][0-9]?$ ]] || cluster_die "usage: up.sh [N]  (N nodes, 1..99; got '$n')"
[[ $(id -u) -eq 0 ]] || cluster_die "must run as root (namespaces, veth, slurmd)"
[[ $cluster_dir != /tmp/* && $cluster_dir != /dev/shm/* ]] \
  || cluster_die "SCORCH_CLUSTER_DIR=$cluster_dir lies under /tmp or /dev/shm, which every node mounts privately"
for b in unshare nsenter ip munged slurmctld slurmd srun mpirun; do
  command -v "$b" >/dev/null || cluster_die "$b not found (apt-get install util-linux iproute2 slurm-wlm munge openmpi-bin)"
done

# Idempotent: a cluster of the same size whose nodes are all alive is left as it is.
if [[ $(cluster_nodes) == "$n" ]]; then
  ok=1
  for k in $(seq "$n"); do cluster_holder "node$k" >/dev/null || ok=0; done
  if ((ok)) && "$cluster_repo/tests/cluster/exec.sh" node1 sinfo -h -o %T 2>/dev/null | grep -qv -E "down|unk"; then
    echo "tests/cluster: $n nodes already up (node1..node$n)"
    exit 0
  fi
fi
[[ $(cluster_nodes) == 0 ]] || "$cluster_repo/tests/cluster/down.sh" >/dev/null
mkdir -p "$cluster_dir/shared" "$cluster_dir/slurm"/{munge,state,spool,log}

# The hosts file every node mounts on /etc/hosts.
hosts=$'127.0.0.1\tlocalhost\n'
for k in $(seq "$n"); do hosts+="$cluster_net.$k"$'\t'"node$k"$'\n'; done

# Links left by a cluster whose state was lost (a machine reused, a folder removed).
for l in $(ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: \(sc-node[0-9]*\)@.*/\1/p'); do ip link del "$l" 2>/dev/null || true; done
ip link del "$cluster_bridge" 2>/dev/null || true
ip link add "$cluster_bridge" type bridge
ip link set "$cluster_bridge" up
echo "$n" > "$cluster_dir/nodes"
for k in $(seq "$n"); do
  node=node$k
  d=$cluster_dir/$node
  rm -rf "$d"
  mkdir -p "$d/keep"
  printf '%s' "$hosts" > "$d/hosts"
  # The holder: enters new namespaces, sets them up, says ready and sleeps; every other
  # process of the node joins its namespaces.
  setsid unshare --uts --mount --net --propagation private -- bash -c '
    set -e
    hostname "$1"
    under_tmp() { [[ $1 == /tmp/* ]]; }
    for p in "$3" "$4"; do
      if under_tmp "$p"; then mkdir -p "$2/keep$(echo "$p" | tr / _)"; mount --bind "$p" "$2/keep$(echo "$p" | tr / _)"; fi
    done
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm
    for p in "$3" "$4"; do
      if under_tmp "$p"; then mkdir -p "$p"; mount --move "$2/keep$(echo "$p" | tr / _)" "$p"; fi
    done
    mount --bind "$2/hosts" /etc/hosts
    ip link set lo up
    touch "$2/ready"
    exec sleep infinity' scorch-holder "$node" "$d" "$cluster_repo" "$(pwd)" </dev/null >"$d/holder.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [[ -f $d/ready ]] && break; sleep 0.05; done
  [[ -f $d/ready ]] || { cat "$d/holder.log" >&2; cluster_die "$node did not come up"; }
  echo "$pid" > "$d/pid"
  readlink "/proc/$pid/ns/uts" > "$d/uts"
  for c in cpu memory; do
    if [[ -d /sys/fs/cgroup/$c ]] && mkdir -p "/sys/fs/cgroup/$c/scorch-$node" 2>/dev/null; then
      echo "$pid" > "/sys/fs/cgroup/$c/scorch-$node/cgroup.procs" || true
    fi
  done
  # Its link: veth sc-nodeK (host side, on the bridge) <-> eth0 (in the node).
  ip link add "sc-$node" type veth peer name eth0 netns "$pid"
  ip link set "sc-$node" master "$cluster_bridge" up
  nsenter --target "$pid" --net ip addr add "$cluster_net.$k/24" dev eth0
  nsenter --target "$pid" --net ip link set eth0 up
  # Give up on a TCP connection after 5 unanswered retransmissions (~13 s, Linux's default
  # 15 takes ~15 min): a node cut off the network is then noticed by whoever still sends to
  # it (mpirun's kill orders after an abort), as on a cluster tuned for quick failover.
  nsenter --target "$pid" --net sysctl -qw net.ipv4.tcp_retries2=5
done
# The bridge runs no STP, so a port forwards as soon as it is up: no learning delay to wait out.

# Slurm: the cluster's own munge key and daemon, the controller on node1, a slurmd per node.
s=$cluster_dir/slurm
chmod 700 "$s/munge"
if [[ ! -f $s/munge/munge.key ]]; then
  dd if=/dev/urandom of="$s/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$s/munge/munge.key"
fi
munged --key-file="$s/munge/munge.key" --socket="$s/munge/munge.sock" --pid-file="$s/munged.pid" \
       --log-file="$s/log/munged.log" --seed-file="$s/munge/munge.seed" --force
cpus=$(getconf _NPROCESSORS_ONLN)
{
  slurm_conf_common
  cat <<CONF
ClusterName=scorchcluster
SlurmctldHost=node1($cluster_net.1)
AuthInfo=socket=$s/munge/munge.sock
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool/%n
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd.%n.pid
SlurmctldLogFile=$s/log/slurmctld.log
SlurmdLogFile=$s/log/slurmd.%n.log
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=10
MessageTimeout=20
CONF
  for k in $(seq "$n"); do
    echo "NodeName=node$k NodeAddr=$cluster_net.$k CPUs=$cpus RealMemory=2048 State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=node[1-$n] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} > "$s/slurm.conf"
# A fresh controller state numbers jobs from the start again: spool files of an earlier
# cluster's steps (PMIx sockets of a killed slurmstepd) would collide with the new ones.
rm -rf "$s/state" "$s/spool"
mkdir -p "$s/state" "$s/spool"
export SLURM_CONF=$s/slurm.conf
"$cluster_repo/tests/cluster/exec.sh" node1 slurmctld -f "$SLURM_CONF"
for k in $(seq "$n"); do "$cluster_repo/tests/cluster/exec.sh" "node$k" slurmd -f "$SLURM_CONF"; done
for _ in $(seq 150); do
  idle=$("$cluster_repo/tests/cluster/exec.sh" node1 sinfo -h -N -o "%N %T" 2>/dev/null | grep -c idle || true)
  ((idle == n)) && break
  sleep 0.2
done
if ((idle != n)); then
  "$cluster_repo/tests/cluster/exec.sh" node1 sinfo -N >&2 || true
  tail -n 20 "$s"/log/*.log >&2 || true
  cluster_die "Slurm: $idle of $n nodes idle; logs in $s/log"
fi
echo "tests/cluster: $n nodes up (node1..node$n on $cluster_cidr; Slurm: SLURM_CONF=$SLURM_CONF; shared folder $cluster_dir/shared)"
