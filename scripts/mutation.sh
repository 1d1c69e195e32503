#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules whose bugs the rest of the suite would not see: the checker,
# the metrics, the grid and EPIC's selection. Scores and every surviving mutant: docs/testing.md.
#
# Usage: scripts/mutation.sh [MODULE ...]      (default: the four below, one after the other)
#
#   MODULE   a path such as artifact/check.py; each is mutated in its own scratch copy of the checkout
#            (the files git tracks or would track, as they are in the working tree), against the fast-lane tests listed
#            for it below, so the checkout itself never gets a mutants/ folder.
#
# Environment: OILWATER_VENV  the environment with mutmut (requirements.lock; default: .venv)
#              MUTATION_OUT   where each module's results are written (default: results/mutation)
#              MUTATION_JOBS  mutants run in parallel (default: 1: the machine is shared)
#              MUTATION_ONLY  mutmut's name patterns for a subset, e.g. 'artifact.check.x_check_numbers*'
#                             (default: every mutant of the module); the rest is reported as "not checked"
#              MUTATION_TIMEOUT  mutmut's timeout_multiplier (default: its 15); raise it when the run shares the
#                             machine, since mutmut also stops a mutant after half its CPU limit of wall time
# Every run is under `nice -n 19`. Output per module: MUTATION_OUT/<module>.txt (every mutant and its
# status: mutmut's, or "killed on recheck"), <module>.json (mutmut's own counts, before the recheck) and
# <module>.survivors.diff (`mutmut show` of each mutant that survived the recheck too).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OILWATER_VENV:-$here/.venv}"
out="${MUTATION_OUT:-$here/results/mutation}"
jobs="${MUTATION_JOBS:-1}"
mutmut="$venv/bin/mutmut"
[[ -x "$mutmut" ]] || { echo "mutation.sh: error: no mutmut in $venv (run scripts/install.sh $venv)" >&2; exit 2; }

# The tests that exercise each module (fast lane only: mutmut runs the tests covering a mutant per mutant).
tests_for() {
    case "$1" in
        artifact/check.py) echo tests/test_check.py tests/test_expected_results.py tests/test_golden.py tests/test_quick_ranges.py tests/test_properties.py \
            tests/test_baseline.py tests/test_fidelity.py ;;
        artifact/metrics.py) echo tests/test_metrics.py tests/test_properties.py tests/test_sa.py tests/test_dlbd_jtt.py \
            tests/test_baseline.py tests/test_fidelity.py ;;
        artifact/grid.py) echo tests/test_grid.py tests/test_config.py tests/test_properties.py tests/test_quick_ranges.py \
            tests/test_preflight.py ;;
        artifact/defenses/epic.py) echo tests/test_epic.py tests/test_epic_official.py tests/test_properties.py ;;
        *) echo "mutation.sh: error: no test list for '$1' (known: artifact/check.py, artifact/metrics.py," \
                "artifact/grid.py, artifact/defenses/epic.py)" >&2; return 2 ;;
    esac
}

modules=("$@")
[[ ${#modules[@]} -gt 0 ]] || modules=(artifact/check.py artifact/metrics.py artifact/grid.py artifact/defenses/epic.py)
mkdir -p "$out"
for module in "${modules[@]}"; do
    tests="$(tests_for "$module")"
    work="$(mktemp -d "${TMPDIR:-/tmp}/oilwater-mutation.XXXXXX")"
    (cd "$here" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar --ignore-failed-read -cf - 2>/dev/null) | tar -C "$work" -xf -
    as_toml() { printf '"%s", ' "$@" | sed 's/, $//'; }
    # shellcheck disable=SC2086  # $tests is a list of paths
    cat >> "$work/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["artifact"]
only_mutate = ["$module"]
also_copy = ["configs", "expected_results", "bench"]
pytest_add_cli_args = ["-m", "not slow", "-p", "no:cacheprovider", "-q"]
pytest_add_cli_args_test_selection = [$(as_toml $tests)]
timeout_multiplier = ${MUTATION_TIMEOUT:-15}
EOF
    name="$(basename "$module" .py)"
    echo "mutation.sh: $module against $tests (scratch copy $work)"
    start=$SECONDS
    # shellcheck disable=SC2086  # MUTATION_ONLY is a list of patterns
    (cd "$work" && nice -n 19 "$mutmut" run --max-children "$jobs" ${MUTATION_ONLY:-} > "$work/run.log" 2>&1) \
        || { tail -30 "$work/run.log" >&2; echo "mutation.sh: error: mutmut run failed for $module (log: $work/run.log)" >&2; exit 1; }
    (cd "$work" && "$mutmut" results --all true > "$work/results.txt" 2>&1 && "$mutmut" export-cicd-stats >/dev/null \
        && cp mutants/mutmut-cicd-stats.json "$out/$name.json")
    # Recheck every mutant mutmut did not kill with a plain pytest run of the module's tests (the mutant chosen
    # by MUTANT_UNDER_TEST, as mutmut's trampolines read it), so that only a mutant that survives both is
    # listed (mutmut once showed a mutant as survived that a plain run of a hypothesis property kills).
    # A timeout (a mutant that loops) counts as detected, as in mutmut.
    recheck() {  # shellcheck disable=SC2086
        (cd "$work/mutants" && MUTANT_UNDER_TEST="$1" timeout 600 nice -n 19 "$venv/bin/python" -m pytest -x -q \
            -m "not slow" -p no:cacheprovider $tests > /dev/null 2>&1)
    }
    recheck "" || { echo "mutation.sh: error: the tests fail without a mutant in $work/mutants" >&2; exit 1; }
    : > "$out/$name.survivors.diff"
    while IFS= read -r line; do
        mutant="${line%%: *}"; mutant="${mutant##* }"; status="${line##*: }"
        if [[ "$status" != "killed" && "$status" != "not checked" && "$status" != "timeout" ]]; then
            if recheck "$mutant"; then
                (cd "$work" && "$mutmut" show "$mutant") >> "$out/$name.survivors.diff" 2>&1
            else
                status="killed on recheck"
            fi
        fi
        echo "$mutant: $status"
    done < "$work/results.txt" > "$out/$name.txt"
    counts="$(awk -F': ' '{n[$2]++} END {for (s in n) printf "%s %d, ", s, n[s]}' "$out/$name.txt")"
    echo "mutation.sh: $module done in $((SECONDS - start)) s: ${counts%, }"
    rm -rf "$work"
done
