# The plugin choices both test clusters share (sourced by tests/slurm/cluster.sh and
# tests/cluster/up.sh): what Debian's slurm-wlm runs with as root without cgroups or a
# database. slurm_conf_common prints them as slurm.conf lines.
slurm_conf_common() {
  cat <<'CONF'
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
MinJobAge=600
CONF
}
