#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, from Debian's packages (slurm-wlm 22.05 + munge), for
# osp-lab's Slurm tests and for trying `osp sweep --executor slurm` by hand. Run as root:
#
#   sudo bash scripts/slurm-up.sh          # install if missing, configure, start; waits until the node is idle
#   sudo bash scripts/slurm-up.sh --down   # stop the daemons (the configuration stays)
#
# Setup (known to work on Debian 12): munged as the munge user with a generated key; slurm.conf with one
# node (this host, all its cores, memory a little under the machine's), proctrack/linuxproc, task/none,
# select/cons_tres, no cgroups, no accounting database (jobs' end states go to a jobcomp text file).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-up.sh: run as root (it installs packages, writes /etc/slurm and /etc/munge, starts daemons)" >&2
  exit 2
fi

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
  for _ in $(seq 50); do
    pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || pgrep -x munged >/dev/null || return 0
    sleep 0.1
  done
}

if [ "${1:-}" = "--down" ]; then
  stop
  echo "slurm-up.sh: stopped"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

stop
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)

# munge: a key only munge can read, its run directory, the daemon as the munge user.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
runuser -u munge -- /usr/sbin/munged

install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >/etc/slurm/slurm.conf <<EOF
# Written by osp-lab's scripts/slurm-up.sh: one node, no cgroups, no accounting database.
ClusterName=osp-local
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SchedulerParameters=sched_interval=1
SchedulerType=sched/backfill
MinJobAge=3600
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 100); do
  if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then
    echo "slurm-up.sh: node ${host} idle (${cpus} CPUs, ${mem_mb} MB); try: srun hostname"
    exit 0
  fi
  sleep 0.3
done
echo "slurm-up.sh: the node did not become idle; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
sinfo >&2 || true
exit 1
