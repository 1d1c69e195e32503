#!/usr/bin/env bash
# Stop the daemons started by start-cluster.sh (slurmd, slurmctld, munged); leaves the packages installed.
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 20); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
done
if [[ -f /run/munge/munged.pid ]] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
  kill "$(cat /run/munge/munged.pid)"
fi
echo "[stop-cluster] stopped" >&2
