#!/usr/bin/env bash
# Open MPI's launch agent for the cluster (plm_rsh_agent): called by mpirun as
#   rsh_agent.sh NODE COMMAND...
# in place of `ssh NODE COMMAND`, it runs the command line through a shell inside NODE's
# namespaces, as sshd would.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
node=$1
shift
cluster_enter "$node" /bin/sh -c "$*"
