#!/usr/bin/env bash
# Starts a real one-node Slurm cluster on this machine (munged, slurmctld, slurmd from Debian's
# munge and slurm-wlm, all as root, state under DIR) and prints the SLURM_CONF to export.
# `cluster.sh stop DIR` stops it. Used by the Slurm backend's test; also handy to try the
# backend by hand:  eval "$(bash tests/slurm/cluster.sh start /tmp/slurm)"
set -euo pipefail
action=$1 dir=$(realpath -m "$2")
if [[ $action == stop ]]; then
  for p in slurmd slurmctld munged; do
    [[ -f $dir/$p.pid ]] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
  exit 0
fi
mkdir -p "$dir"/{state,spool,munge}
host=$(hostname -s)
cpus=$(nproc)
# The package's key when its post-install made one, else a key of this cluster's own.
key=/etc/munge/munge.key
if [[ ! -r $key ]]; then
  key=$dir/munge/munge.key
  [[ -f $key ]] || mungekey --create --keyfile="$key"
fi
munged --force --socket="$dir/munge/munge.sock" --pid-file="$dir/munged.pid" \
  --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" --key-file="$key"
cat > "$dir/slurm.conf" <<CONF
ClusterName=ardkit-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${ARDKIT_SLURM_PORT:-16817}
SlurmdPort=$(( ${ARDKIT_SLURM_PORT:-16817} + 1 ))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=3600
MessageTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -i
slurmd
for _ in $(seq 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$dir/slurm.conf"
    exit 0
  fi
  sleep 1
done
echo "slurm did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
sinfo >&2 || true
exit 1
