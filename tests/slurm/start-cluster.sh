#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (for tests/test_slurm.py and CI).
#
# Idempotent: installs Debian's slurm-wlm + munge once, writes /etc/slurm/slurm.conf, starts munged,
# slurmctld and slurmd as plain daemons (no systemd), and waits until `sinfo` shows the node idle.
# Needs root. Env: SLURM_START_TIMEOUT (seconds to wait for the node, default 60).
#
# What it needed (Debian 12 in a container without systemd, SLURM 22.05; measured: 15 s from a bare
# machine including apt-get, under 2 s when installed, 0.3 s when already up):
#   - DEBIAN_FRONTEND=noninteractive, and a policy-rc.d during the install so the packages' postinst
#     scripts do not start daemons themselves (this script starts them, with its own config);
#   - no cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, JobAcctGatherType=none, so
#     nothing needs a writable cgroup hierarchy or systemd's delegation;
#   - the node's RealMemory at or below what slurmd detects (else the node is drained), so it is read
#     from /proc/meminfo minus a margin; CPUs=2 (or fewer if the machine has fewer cores);
#   - the controller and the node addressed as 127.0.0.1, so the host name need not resolve;
#   - SlurmUser/SlurmdUser=root (CI runs as root), so the spool and log folders need no chown;
#   - munged with a key (0400, owned by munge) and /run/munge, started as the munge user;
#   - no accounting (slurmdbd needs a database): `sacct` fails here, so artifact/executors/slurm.py
#     follows tasks with `squeue`, never with sacct.
set -euo pipefail

TIMEOUT=${SLURM_START_TIMEOUT:-60}
NODE=$(hostname -s)
CONF=/etc/slurm/slurm.conf
log() { echo "[start-cluster] $*" >&2; }
die() { echo "[start-cluster] ERROR: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (apt-get install and the daemons); run it as root or under sudo"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v sbatch >/dev/null; then
  log "installing slurm-wlm and munge (apt-get)"
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# --- munge -----------------------------------------------------------------------------------
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null 2>&1 || true; fi
  [[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
  munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# --- slurm.conf ------------------------------------------------------------------------------
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MB=$(( MEM_MB > 2048 ? MEM_MB - 1024 : MEM_MB / 2 ))
CPUS=$(( $(nproc) < 2 ? $(nproc) : 2 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
NEW_CONF=$(cat <<EOF
# Written by tests/slurm/start-cluster.sh: a single node, no cgroups, for tests and CI.
ClusterName=oilwater
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MaxArraySize=1001
MaxJobCount=10000
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
DefMemPerCPU=1024
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MB} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
)
if [[ ! -f $CONF ]] || [[ "$(cat $CONF)" != "$NEW_CONF" ]]; then
  echo "$NEW_CONF" > "$CONF"
  CHANGED=1
fi

# --- daemons ---------------------------------------------------------------------------------
running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [[ ${CHANGED:-0} == 1 ]] && running /run/slurmctld.pid; then
  log "slurm.conf changed: restarting the daemons"
  kill "$(cat /run/slurmd.pid 2>/dev/null)" "$(cat /run/slurmctld.pid)" 2>/dev/null || true
  sleep 2
fi
if ! running /run/slurmctld.pid; then
  log "starting slurmctld"
  /usr/sbin/slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
if ! running /run/slurmd.pid; then
  log "starting slurmd"
  /usr/sbin/slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi

# --- wait for the node -----------------------------------------------------------------------
deadline=$(( $(date +%s) + TIMEOUT ))
while true; do
  state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
  esac
  if (( $(date +%s) > deadline )); then
    die "node $NODE not idle after ${TIMEOUT}s (state: '${state:-no answer}'); see /var/log/slurm/slurmctld.log and slurmd.log"
  fi
  sleep 1
done
log "cluster up: node $NODE is $state (MaxArraySize=$(scontrol show config | awk '/^MaxArraySize/ {print $3}'))"
