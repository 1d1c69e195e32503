#!/usr/bin/env bash
# The single install path of the artifact: CI, reproduce.sh and the Dockerfile all call this.
#
# Usage: scripts/install.sh [--deps-only] [VENV_DIR]
#
#   VENV_DIR     create this virtual environment (python3 -m venv) if it is missing and install
#                into it. Without it, install into the current python (inside the image that
#                is the image's venv, already first on PATH).
#   --deps-only  install requirements.lock only, not the package itself. The Dockerfile uses it
#                to cache the heavy dependency layer before the sources are copied in.
#
# Environment: PYTHON  interpreter used to create VENV_DIR (default: python3.11, else python3),
#                      or the one to install into when no VENV_DIR is given (default: python3).
#
# What it runs (exact pins; --no-deps because the lock is the whole dependency closure):
#   pip install --no-deps -r requirements.lock
#   pip install --no-deps --no-build-isolation -e .    (the checkout, editable; step 2)
# It is idempotent and quick: a stamp file in the environment holds the sha256 of requirements.lock,
# and when it matches (and the editable install is this checkout's) pip is skipped.
set -euo pipefail

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

deps_only=0
venv_dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --deps-only) deps_only=1 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (usage: scripts/install.sh [--deps-only] [VENV_DIR])" ;;
        *) [[ -z "$venv_dir" ]] || die "more than one VENV_DIR given"; venv_dir="$1" ;;
    esac
    shift
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute, since the import check below runs from / (a relative VENV_DIR would name nothing there).
[[ -z "$venv_dir" || "$venv_dir" == /* ]] || venv_dir="$PWD/$venv_dir"
lock="$repo_root/requirements.lock"
[[ -f "$lock" ]] || die "no requirements.lock at $lock"

# --- choose the interpreter ------------------------------------------------------------------
if [[ -n "$venv_dir" ]]; then
    if [[ ! -x "$venv_dir/bin/python" ]]; then
        base_python="${PYTHON:-}"
        if [[ -z "$base_python" ]]; then
            if command -v python3.11 >/dev/null 2>&1; then base_python=python3.11; else base_python=python3; fi
        fi
        base_ver="$("$base_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
            || die "cannot run '$base_python'; set PYTHON=/path/to/python3.11"
        [[ "$base_ver" == "3.11" ]] || die "requirements.lock is for CPython 3.11, but '$base_python' is Python $base_ver (set PYTHON=/path/to/python3.11)"
        say "creating venv $venv_dir with $("$base_python" -c 'import sys; print(sys.executable)')"
        "$base_python" -m venv "$venv_dir" || die "'$base_python -m venv $venv_dir' failed (Debian/Ubuntu: apt-get install python3.11-venv)"
    fi
    py="$venv_dir/bin/python"
else
    py="${PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || die "'$py' not found; pass a VENV_DIR or set PYTHON"
fi

# The lock is resolved for CPython 3.11 (cp311 wheels): refuse anything else up front instead of
# letting pip fail half-way with "no matching distribution".
pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$pyver" == "3.11" ]] || die "requirements.lock is for CPython 3.11, but $py is Python $pyver (set PYTHON=python3.11)"
"$py" -m pip --version >/dev/null 2>&1 || die "$py has no pip (create the environment with 'python3.11 -m venv', which bundles it)"

prefix="$("$py" -c 'import sys; print(sys.prefix)')"
sha256() { "$py" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"; }
deps_stamp="$prefix/.oilwater-deps.sha256"
pip=("$py" -m pip install --disable-pip-version-check --no-input)

# --- 1. the locked dependency closure --------------------------------------------------------
want_deps="$(sha256 "$lock")"
if [[ -f "$deps_stamp" && "$(cat "$deps_stamp")" == "$want_deps" ]]; then
    say "dependencies already match requirements.lock (sha256 ${want_deps:0:12}) in $prefix; skipping"
else
    say "installing requirements.lock (sha256 ${want_deps:0:12}) into $prefix"
    start=$SECONDS
    "${pip[@]}" --no-deps -r "$lock" || die "pip install -r requirements.lock failed (see pip's message above)"
    echo "$want_deps" > "$deps_stamp"
    say "dependencies installed in $((SECONDS - start)) s"
fi

if [[ $deps_only -eq 1 ]]; then
    say "--deps-only: not installing the package"
    exit 0
fi

# --- 2. the artifact package itself --------------------------------------------------------
# An editable install (pip install -e .), built offline by the lock's setuptools (--no-build-isolation,
# --no-deps: nothing is fetched). Skipped when this environment already has it from this checkout; an
# older install's oilwater-checkout.pth (a link without package metadata) is removed.
[[ -f "$repo_root/artifact/__init__.py" ]] || die "no artifact/ package in $repo_root"
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -f "$site/oilwater-checkout.pth"
# find_spec from / so that the current directory cannot stand in for an install.
installed_at() { (cd / && "$py" -c 'import importlib.util as u, os; s = u.find_spec("artifact"); print(os.path.dirname(s.origin) if s and s.origin else "")' 2>/dev/null) || true; }
editable_from() { (cd / && "$py" -c '
import importlib.metadata as m, json
try:
    d = json.loads(m.distribution("oilwater").read_text("direct_url.json") or "{}")
except m.PackageNotFoundError:
    d = {}
print(d.get("url", "") if d.get("dir_info", {}).get("editable") else "")' 2>/dev/null) || true; }
if [[ "$(editable_from)" == "file://$repo_root" && "$(installed_at)" == "$repo_root/artifact" ]]; then
    say "package 'oilwater' already installed editable from $repo_root; skipping"
else
    say "installing the package editable from $repo_root (pip install --no-deps --no-build-isolation -e .)"
    "${pip[@]}" --no-deps --no-build-isolation -q -e "$repo_root" \
        || die "pip install -e $repo_root failed (see pip's message above; the build backend is requirements.lock's setuptools)"
    got="$(installed_at)"
    [[ "$got" == "$repo_root/artifact" ]] \
        || die "after installing, 'import artifact' resolves to '${got:-nothing}', not $repo_root/artifact (an older install shadows it? pip uninstall oilwater)"
fi
say "done: $py imports artifact from $repo_root/artifact"
