#!/usr/bin/env bash
# Stop the daemons started by start-cluster.sh (slurmd, slurmctld, munged); leaves the packages installed.
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  [[ $pidfile == /run/munge/* ]] || rm -f "$pidfile"
done
echo "[stop-cluster] stopped" >&2
