#!/usr/bin/env bash
# Faults and limits on the cluster's nodes and links (tests/cluster/up.sh), for the fault
# tests and the benchmarks:
#   fault.sh kill NODE             SIGKILL every process of NODE (its daemons, ranks, orted,
#                                  slurmd), as when a node loses power; prints how many
#   fault.sh restart NODE          NODE comes back as after a reboot: whatever still runs there
#                                  is killed, its /tmp and /dev/shm and its slurmd spool
#                                  (sockets and state of the steps that died with it) emptied,
#                                  and slurmd started again
#   fault.sh cut NODE              take NODE's link down (its veth on the bridge): nothing
#                                  reaches it or leaves it, no error is sent to anyone
#   fault.sh heal NODE             bring the link back
#   fault.sh shape NODE|all [--rate R] [--delay MS] [--loss PCT]
#                                  limit a node's link in both directions: R a tc rate
#                                  (e.g. 1gbit, 10gbit; token bucket, tbf), a delay of MS
#                                  milliseconds on every packet the node sends (nfq_delay.cpp
#                                  through NFQUEUE: this kernel has no tc netem) and a random
#                                  loss of PCT percent of the packets it sends (nft, in the node)
#   fault.sh unshape NODE|all      remove all of that
#   fault.sh slow NODE PCT         limit NODE's processes to PCT% of one core (CPU cgroup quota)
#   fault.sh unslow NODE
#   fault.sh memory NODE SIZE|none limit what NODE's processes may hold (memory cgroup: SIZE
#                                  as 1500M or 2G), as a node with less memory or a job's
#                                  cgroup under Slurm
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
(($# >= 2)) || usage
cmd=$1
node=$2
shift 2
nodes=("$node")
if [[ $node == all ]]; then
  nodes=()
  for k in $(seq "$(cluster_nodes)"); do nodes+=("node$k"); done
fi
for nd in "${nodes[@]}"; do cluster_holder "$nd" >/dev/null || cluster_die "$nd is not up"; done
in_node() { nsenter --target "$(cluster_holder "$1")" --net -- "${@:2}"; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The delay program (nfq_delay.cpp), built once into the cluster's state folder.
build_delayer() {
  local bin=$cluster_dir/bin/nfq_delay
  if [[ ! -x $bin || $here/nfq_delay.cpp -nt $bin ]]; then
    mkdir -p "$cluster_dir/bin"
    g++ -std=c++20 -O2 -Wall -o "$bin.tmp" "$here/nfq_delay.cpp" -lnetfilter_queue -lnfnetlink >&2 \
      || cluster_die "fault.sh: cannot build nfq_delay (needs Debian's libnetfilter-queue-dev)"
    mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

# SIGKILLs everything in node $1's namespaces but the holder, which keeps the node "powered"
# so that it can be entered again (a rerun, slurmd restarted); prints how many.
kill_node() {
  local holder pids
  holder=$(cluster_holder "$1")
  mapfile -t pids < <(cluster_node_pids "$1" | grep -vx "$holder")
  ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
  echo "${#pids[@]}"
}

# The rule (mangle table) that sends a node's packets for the cluster network to nfq_delay;
# --queue-bypass lets them pass whenever no program holds the queue.
delay_rule=(POSTROUTING -o eth0 -d "$cluster_cidr" -j NFQUEUE --queue-num 0 --queue-bypass
            -m comment --comment scorch_fault_delay)

# Removes node $1's delay: its NFQUEUE rule first (packets then pass at once), then the
# program, which accepts what it still holds as it stops.
stop_delay() {
  local nd=$1 pidf=$cluster_dir/$1/delay.pid
  while in_node "$nd" iptables -t mangle -D "${delay_rule[@]}" 2>/dev/null; do :; done
  if [[ -f $pidf ]]; then
    pkill -TERM -s "$(cat "$pidf")" 2>/dev/null || true
    rm -f "$pidf"
  fi
}

case $cmd in
  kill) kill_node "$node" ;;
  restart)
    kill_node "$node" >/dev/null
    # A reboot empties the node's tmpfs: /tmp (where Slurm's PMIx plugin keeps each step's
    # directory: one left behind makes the requeued step, of the same name, fail to launch)
    # and /dev/shm.
    # -xdev: what up.sh mounted back into the node (a repository or folder under the host's /tmp)
    # is another file system and stays untouched.
    nsenter --target "$(cluster_holder "$node")" --mount -- find /tmp /dev/shm -xdev -mindepth 1 -delete 2>/dev/null || true
    rm -rf "${cluster_dir:?}/slurm/spool/$node"
    "$here/exec.sh" "$node" slurmd -f "$cluster_dir/slurm/slurm.conf"
    ;;
  cut) ip link set "sc-$node" down ;;
  heal) ip link set "sc-$node" up ;;
  shape)
    rate="" delay="" loss=""
    while (($#)); do
      case $1 in
        --rate) rate=$2; shift 2 ;;
        --delay) delay=$2; shift 2 ;;
        --loss) loss=$2; shift 2 ;;
        *) usage ;;
      esac
    done
    for nd in "${nodes[@]}"; do
      if [[ -n $rate ]]; then
        # Burst: enough for 1 ms at the rate (at least 64 KiB), as a switch port buffers.
        bytes=$(numfmt --from=si "${rate%bit}" 2>/dev/null || echo 1000000000)
        burst=$(( bytes / 8 / 1000 > 65536 ? bytes / 8 / 1000 : 65536 ))
        tc qdisc replace dev "sc-$nd" root tbf rate "$rate" burst "$burst" latency 50ms
        in_node "$nd" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
      fi
      if [[ -n $delay ]]; then
        [[ $delay =~ ^[0-9]+([.][0-9]+)?$ ]] || cluster_die "fault.sh: --delay takes milliseconds, not '$delay'"
        stop_delay "$nd"
        delayer=$(build_delayer)
        # In the node (so that down.sh and kill find it), detached from this shell.
        setsid "$here/exec.sh" "$nd" "$delayer" 0 "$delay" >"$cluster_dir/$nd/delay.log" 2>&1 &
        echo $! > "$cluster_dir/$nd/delay.pid"
        for _ in $(seq 50); do grep -q '^nfq_delay: queue' "$cluster_dir/$nd/delay.log" && break; sleep 0.1; done
        grep -q '^nfq_delay: queue' "$cluster_dir/$nd/delay.log" \
          || cluster_die "fault.sh: the delay on $nd did not start: $(cat "$cluster_dir/$nd/delay.log")"
        in_node "$nd" iptables -t mangle -A "${delay_rule[@]}"
      fi
      if [[ -n $loss ]]; then
        in_node "$nd" nft -f - <<NFT
table inet scorch_fault
delete table inet scorch_fault
table inet scorch_fault {
  chain out { type filter hook output priority 0; ip daddr $cluster_cidr numgen random mod 10000 < $(awk "BEGIN {print int($loss * 100)}") drop; }
}
NFT
      fi
    done
    ;;
  unshape)
    for nd in "${nodes[@]}"; do
      tc qdisc del dev "sc-$nd" root 2>/dev/null || true
      in_node "$nd" tc qdisc del dev eth0 root 2>/dev/null || true
      in_node "$nd" nft delete table inet scorch_fault 2>/dev/null || true
      stop_delay "$nd"
    done
    ;;
  slow)
    pct=${1:?usage: fault.sh slow NODE PCT}
    cg=/sys/fs/cgroup/cpu/scorch-$node
    [[ -d $cg ]] || cluster_die "no CPU cgroup for $node (needs the cgroup v1 cpu controller)"
    echo $(( $(cat "$cg/cpu.cfs_period_us") * pct / 100 )) > "$cg/cpu.cfs_quota_us"
    ;;
  unslow) echo -1 > "/sys/fs/cgroup/cpu/scorch-$node/cpu.cfs_quota_us" ;;
  memory)
    size=${1:?usage: fault.sh memory NODE SIZE|none}
    cg=/sys/fs/cgroup/memory/scorch-$node
    [[ -d $cg ]] || cluster_die "no memory cgroup for $node (needs the cgroup v1 memory controller)"
    [[ $size == none ]] && size=-1 || size=$(numfmt --from=iec "$size")
    echo "$size" > "$cg/memory.limit_in_bytes"
    ;;
  *) usage ;;
esac
