#!/usr/bin/env bash
# CI's container check (docs/container.md, "The offline build CI does"): build the repository's
# Dockerfile with podman on a Debian bookworm base made by mmdebstrap (no container registry, no
# release host), run `./reproduce.sh table2 --preset smoke` inside it as the non-root user with no
# network and a results volume, and require the table and every job's metrics to equal a host run of
# the same command.
#
#   tests/container/build-and-smoke.sh        # from anywhere; needs root and ~15 GB of free disk
#
# Exits 0 with "SKIPPED: ..." when podman is missing and cannot be installed. Idempotent: the base
# image, the image's layers and the private podman configuration live in $OILWATER_CONTAINER_STATE
# (default /var/tmp/oilwater-container) and are reused; the containers and run folders it makes are
# removed on exit. Every step runs under a time limit, a guard against hangs (measured on a loaded
# 2-core machine: 16.5 min uncached, 9 min cached; docs/container.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state="${OILWATER_CONTAINER_STATE:-/var/tmp/oilwater-container}"
base_tag=localhost/oilwater-base:bookworm
image_tag=localhost/oilwater:ci
name="oilwater-smoke-$$"
cmd=(./reproduce.sh table2 --preset smoke)

say() { echo "build-and-smoke: $*"; }
die() { echo "build-and-smoke: error: $*" >&2; exit 1; }
skip() { echo "build-and-smoke: SKIPPED: $*"; exit 0; }
step() {  # step SECONDS WHAT COMMAND...: run under a time limit, its output in $state/last-step.log
    local limit="$1" what="$2" start=$SECONDS rc=0
    shift 2
    timeout --kill-after=30 "$limit" "$@" >"$state/last-step.log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        tail -n 40 "$state/last-step.log" >&2
        die "$what failed (exit $rc$([[ $rc -eq 124 ]] && echo ", over its ${limit} s limit"); log: $state/last-step.log)"
    fi
    say "$what: $((SECONDS - start)) s"
}

[[ $(id -u) -eq 0 ]] || skip "needs root (rootful podman, mmdebstrap, a results folder owned by uid 10001)"

mkdir -p "$state"

# --- tools -----------------------------------------------------------------------------------------
# runc, not crun: crun refuses hybrid cgroup hierarchies (cgroup v1 with a v2 'unified' mount).
missing=()
for tool in podman mmdebstrap runc; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null 2>&1 || skip "no ${missing[*]}, and no apt-get to install them"
    say "installing ${missing[*]} from Debian"
    if ! { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 \
            apt-get install -y -qq podman mmdebstrap runc; } >"$state/apt.log" 2>&1 \
            || ! command -v podman >/dev/null 2>&1; then
        tail -n 5 "$state/apt.log" >&2 || true
        skip "podman cannot be installed here (apt-get install podman mmdebstrap runc failed; log: $state/apt.log)"
    fi
fi

exec 9>"$state/lock"
flock -w 3600 9 || die "another build-and-smoke.sh holds $state/lock for over an hour"

free_gb=$(( $(df --output=avail -k "$state" | tail -n 1) / 1024 / 1024 ))
[[ $free_gb -ge 15 ]] || die "$free_gb GB free under $state; the build needs about 15 GB (free some, or set OILWATER_CONTAINER_STATE)"

# A private configuration, so that nothing under /etc changes: runc (above), ulimits that the container
# can be given (podman's defaults for nofile and nproc exceed this host's hard limits, which setrlimit
# refuses; podman 4.3 itself runs with nproc at most 32768, measured: 32769 is refused), its own storage.
limit() { local v; v="$(ulimit -H "$1")"; [[ "$v" == unlimited || "$v" -gt "$2" ]] && v="$2"; echo "$v:$v"; }
cat >"$state/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(limit -n 1048576)", "nproc=$(limit -u 32768)"]
[engine]
runtime = "runc"
EOF
cat >"$state/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$state/storage"
runroot = "$state/run"
EOF
export CONTAINERS_CONF="$state/containers.conf" CONTAINERS_STORAGE_CONF="$state/storage.conf"

work="$(mktemp -d "$state/work.XXXXXX")"
host_pid=""
cleanup() {
    [[ -z "$host_pid" ]] || kill "$host_pid" 2>/dev/null || true
    podman rm -f --ignore "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# Left by a run that was killed: its containers (podman's and the build's) and run folders.
podman ps -aq --external | xargs -r podman rm -f >/dev/null 2>&1 || true
find "$state" -maxdepth 1 -name 'work.*' ! -path "$work" -exec rm -rf {} +

# The host run of the smoke target goes on meanwhile: it needs only the CPU, the build mostly the network
# and the disk. (Its numbers do not depend on what else runs: same code, seed and thread count.)
mkdir -p "$work/inside" "$work/host"
host_start="$(date +%s)"
timeout --kill-after=30 2400 nice -n 10 "$repo/reproduce.sh" "${cmd[@]:1}" --results "$work/host" \
    >"$work/host.log" 2>&1 &
host_pid=$!

# --- the base: Debian bookworm with python3.11, from the mirror apt already uses ------------------
if podman image exists "$base_tag"; then
    say "base $base_tag present; reusing it"
else
    # apt's own sources for bookworm (main archive, updates, security), so that no host name is written here.
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' 'Origin: Debian' \
        | awk '$2 ~ /^bookworm(-updates|-security)?$/ && $3 == "main" {print "deb " $1 " " $2 " main"}' \
        | sort -u >"$work/sources.list"
    grep -q ' bookworm main$' "$work/sources.list" \
        || die "apt has no Debian bookworm source (the base is bookworm's python3.11); add one to /etc/apt/sources.list.d and run apt-get update"
    # passwd for the Dockerfile's useradd; python3.11-venv for its venv.
    step 900 "base (mmdebstrap)" nice -n 10 mmdebstrap --variant=minbase \
        --include=python3.11,python3.11-venv,ca-certificates,passwd bookworm "$work/base.tar" "$work/sources.list"
    step 300 "base import" podman import --quiet "$work/base.tar" "$base_tag"
    rm -f "$work/base.tar"
fi

# --- the image -------------------------------------------------------------------------------------
# The host's CA bundle goes in as a build secret: pip reaches PyPI through this machine's TLS proxy.
ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
[[ -f "$ca" ]] || die "no CA bundle at $ca (set PIP_CERT to the one pip uses on this machine)"
commit="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
step 1800 "image build" nice -n 10 podman build --layers \
    --build-arg BASE_IMAGE="$base_tag" --build-arg OILWATER_WEIGHTS=skip \
    --build-arg OILWATER_GIT_COMMIT="$commit" --secret id=pip_ca,src="$ca" \
    -t "$image_tag" -f "$repo/Dockerfile" "$repo"
# Layers of earlier builds that no tag uses any more (older locks or sources): keeps the storage bounded.
podman image prune -f >/dev/null
say "image $image_tag: $(podman image inspect --format '{{.Size}}' "$image_tag" | awk '{printf "%.1f GB", $1 / 1e9}')"

# --- the smoke run, inside and on the host ---------------------------------------------------------
chown 10001:10001 "$work/inside"
step 2400 "smoke run inside the image" nice -n 10 podman run --rm --name "$name" --network none \
    --user 10001:10001 -v "$work/inside":/results "$image_tag" "${cmd[@]}"
# The image has no weights (OILWATER_WEIGHTS=skip): the paper preset must say how to add them, at once.
rc=0
out="$(timeout 300 podman run --rm --name "$name" --network none "$image_tag" \
    ./reproduce.sh table2 --preset paper 2>&1)" || rc=$?
if [[ $rc -eq 0 || "$out" != *"-v /path/to/checkpoints:/opt/torch/hub/checkpoints:ro"* ]]; then
    tail -n 5 <<<"$out" >&2
    die "the paper preset inside the image did not stop with the missing-weights line (exit $rc)"
fi
say "paper preset inside the image: stops with the missing-weights line"
rc=0
wait "$host_pid" || rc=$?
host_pid=""
if [[ $rc -ne 0 ]]; then
    tail -n 40 "$work/host.log" >&2
    die "the smoke run on the host failed (exit $rc)"
fi
say "smoke run on the host (alongside the build): $(( $(stat -c %Y "$work/host.log") - host_start )) s"

# --- identical? ------------------------------------------------------------------------------------
"$repo/.venv/bin/python" - "$work/host" "$work/inside" <<'EOF' || die "the smoke run inside the image differs from the host run (above)"
import json, sys
from pathlib import Path

host, inside = map(Path, sys.argv[1:])
problems = []
for rel in ("tables/smoke/table2.md", "tables/smoke/table2.csv"):
    a, b = host / rel, inside / rel
    if not (a.is_file() and b.is_file()):
        problems.append(f"{rel}: missing on the {'host' if not a.is_file() else 'image'} side")
    elif a.read_bytes() != b.read_bytes():
        problems.append(f"{rel}: differs")
jobs = {side: {p.parent.name: json.loads(p.read_text())["metrics"] for p in (root / "jobs").glob("*/result.json")}
        for side, root in (("host", host), ("image", inside))}
if not jobs["host"] or jobs["host"].keys() != jobs["image"].keys():
    problems.append(f"job ids differ: host {sorted(jobs['host'])}, image {sorted(jobs['image'])}")
problems += [f"job {j}: metrics differ" for j in sorted(jobs["host"].keys() & jobs["image"].keys())
             if jobs["host"][j] != jobs["image"][j]]
for p in problems:
    print("build-and-smoke:", p, file=sys.stderr)
if not problems:
    print(f"build-and-smoke: identical: table2.md, table2.csv and the metrics of {len(jobs['host'])} jobs")
sys.exit(1 if problems else 0)
EOF
say "PASSED in $SECONDS s"
