#!/usr/bin/env bash
# Reproduce a table of "Like Oil and Water" (run `./reproduce.sh --help` or `--list`).
#
#   ./reproduce.sh TARGET [--preset paper|quick|tiny|smoke] [--seeds N] [--results DIR] [--data-root DIR]
#                         [--jobs N] [--only KEY=VALUE] [--device D] [--executor local|slurm] [--dry-run]
#   ./reproduce.sh --list | check TARGET | status TARGET | report [--preset P] | data check|synth ... | selftest [PYTEST ARGS]
#
# Outside the Docker image it first creates (or reuses) a virtual environment from requirements.lock
# (scripts/install.sh: the same install path as CI and the image; quick when already installed).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${OILWATER_IN_IMAGE:-}" ]]; then
    py=python3
else
    venv="${OILWATER_VENV:-$here/.venv}"
    bash "$here/scripts/install.sh" "$venv" >&2
    py="$venv/bin/python"
fi

# Relative paths in the arguments (--results, --data-root, --out...) are the caller's, not the repository's.
export OILWATER_CWD="${OILWATER_CWD:-$PWD}"
cd "$here"
if [[ "${1:-}" == "selftest" ]]; then
    shift
    exec "$py" -m pytest "$@"
fi
exec "$py" -m artifact "$@"
