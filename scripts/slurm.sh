#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for tests/slurm.rs (../shared/reference/slurm.md):
# Debian's slurm-wlm and munge, every path in a scratch directory, two jobs at once.
#   scripts/slurm.sh start   # installs (once, apt), starts munged, slurmctld, slurmd
#   scripts/slurm.sh stop
#   scripts/slurm.sh env     # prints SLURM_CONF and LLMIB_SLURM to export
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${LLMIB_SLURM_DIR:-/tmp/llm-inf-bench-slurm}
CONF=$DIR/slurm.conf
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
}

start_munge() {
  if pgrep -x munged >/dev/null; then return 0; fi
  $SUDO mkdir -p /etc/munge /var/run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  $SUDO chown -R munge:munge /etc/munge /var/run/munge /var/log/munge /var/lib/munge
  $SUDO chmod 0400 /etc/munge/munge.key
  $SUDO -u munge munged --force 2>/dev/null || $SUDO munged --force
}

write_conf() {
  local host; host=$(hostname -s)
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/jobs"
  cat > "$CONF" <<CONF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmUser=root
ReturnToService=2
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

stop() {
  for d in slurmd slurmctld; do
    [ -f "$DIR/$d.pid" ] && { $SUDO kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true; rm -f "$DIR/$d.pid"; }
  done
  return 0
}

case "${1:-}" in
  start)
    install
    start_munge
    stop
    rm -rf "$DIR/state"   # a fresh cluster: no jobs recovered from an earlier start
    write_conf
    export SLURM_CONF=$CONF
    $SUDO env SLURM_CONF="$CONF" slurmctld -f "$CONF"
    $SUDO env SLURM_CONF="$CONF" slurmd -f "$CONF"
    for _ in $(seq 100); do
      state=$(sinfo -h -o %t 2>/dev/null || true)
      [ "$state" = "idle" ] && { echo "slurm: one node idle on 127.0.0.1 (SLURM_CONF=$CONF)"; exit 0; }
      sleep 0.2
    done
    echo "slurm did not come up (node state: ${state:-none}):"
    tail -20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" 2>/dev/null || true
    exit 1 ;;
  stop) stop ;;
  env)
    echo "export SLURM_CONF=$CONF"
    echo "export LLMIB_SLURM=1" ;;
  *) echo "usage: $0 start | stop | env"; exit 2 ;;
esac
