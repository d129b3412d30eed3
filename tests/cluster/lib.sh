# Shared by the cluster scripts (sourced, not run): where the cluster keeps its state and how
# a node is named, found and entered. See up.sh for what a node is.
#
# State lives in SCORCH_CLUSTER_DIR (default /var/tmp/scorch-cluster, which must not lie
# under /tmp: every node mounts a private tmpfs there):
#   nodes              how many nodes up.sh started
#   nodeK/pid          the pid of node K's holder (the first process of its namespaces)
#   nodeK/uts          its UTS namespace id (how down.sh finds every process of the node)
#   nodeK/hosts        the node's /etc/hosts (node1..nodeN on the cluster network)
#   shared/            a folder every node sees at the same path (the cluster's "shared
#                      file system": put workdirs and data here)
#   slurm/             slurm.conf, munge key and socket, controller state, spool, logs
cluster_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster_dir=${SCORCH_CLUSTER_DIR:-/var/tmp/scorch-cluster}
# The cluster network: a bridge of the cluster's own, with IPv4 link-local addresses
# (169.254.0.0/16 is never routed off a link by definition; the host holds no address on the
# bridge, so nothing is forwarded anywhere).
cluster_bridge=scorchbr0
cluster_net=169.254.213
cluster_cidr=$cluster_net.0/24

cluster_die() { echo "tests/cluster: $*" >&2; exit 1; }

cluster_nodes() {  # the number of nodes up, 0 if none
  [[ -f $cluster_dir/nodes ]] && cat "$cluster_dir/nodes" || echo 0
}

# The pid of node $1's holder if it is alive and still in the namespace it was given.
cluster_holder() {
  local node=$1 pid
  [[ -f $cluster_dir/$node/pid && -f $cluster_dir/$node/uts ]] || return 1
  pid=$(cat "$cluster_dir/$node/pid")
  [[ -e /proc/$pid/ns/uts && $(readlink "/proc/$pid/ns/uts") == "$(cat "$cluster_dir/$node/uts")" ]] || return 1
  echo "$pid"
}

# Every pid in node $1's UTS namespace (the holder, daemons, ranks, anything exec.sh started).
# A namespace id can be reused once its namespace is gone: the pids count only if that
# namespace's hostname is still the node's name.
cluster_node_pids() {
  local want p pids=()
  want=$(cat "$cluster_dir/$1/uts" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/ns/uts" 2>/dev/null) == "$want" ]] && pids+=("${p#/proc/}")
  done
  ((${#pids[@]})) || return 0
  [[ $(nsenter --target "${pids[0]}" --uts hostname 2>/dev/null) == "$1" ]] || return 0
  printf '%s\n' "${pids[@]}"
}

# Runs "$@" inside node $1: its hostname, mounts (/tmp, /dev/shm, /etc/hosts) and network,
# in its CPU and memory cgroups when there are (fault.sh slow and memory limit a node's CPU
# and memory through them).
cluster_enter() {
  local node=$1 pid
  shift
  pid=$(cluster_holder "$node") || cluster_die "$node is not up (tests/cluster/up.sh N starts nodes node1..nodeN)"
  local c
  for c in cpu memory; do
    if [[ -d /sys/fs/cgroup/$c/scorch-$node ]]; then
      echo $$ > "/sys/fs/cgroup/$c/scorch-$node/cgroup.procs" 2>/dev/null || true
    fi
  done
  # The working directory carries over unless it is node-private (under /tmp or /dev/shm).
  local wd=$PWD
  [[ $wd == /tmp || $wd == /tmp/* || $wd == /dev/shm* ]] && wd=/
  # The nodes share this machine's cores: MPI ranks waiting in a collective yield the core
  # rather than spin (Open MPI would only do so if it saw the oversubscription).
  export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
  exec nsenter --target "$pid" --uts --mount --net --wd="$wd" -- "$@"
}
