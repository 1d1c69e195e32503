"""Golden test: a small committed results set -> the exact table and checker text (DomainBed-style).

The configs and expected values are frozen copies under tests/golden/, so this pins the aggregator
and checker, not the evolving experiment grid.
"""

import json
from pathlib import Path

from artifact.store import Store

GOLDEN = Path(__file__).parent / "golden"


def _normalise(text: str, store: Store) -> str:
    return text.replace(str(store.root), "<results>")


def test_table_and_checker_text_are_pinned(golden_env, run_cli):
    store, write = golden_env
    write()
    code, out, _ = run_cli("check", "table2", "--preset", "paper", "--results", str(store.root))
    expected = (GOLDEN / "table2.expected.txt").read_text()
    assert _normalise(out, store) == expected
    assert code == 0


def test_checker_fails_on_a_wrong_result(golden_env, run_cli):
    store, write = golden_env

    def ideal_backdoored(labels, metrics):
        if labels["case"] == "ideal":
            metrics["asr"] = 60.0  # the attack succeeds without amplification: contradicts the paper
        return metrics

    write(ideal_backdoored)
    code, out, _ = run_cli("check", "table2", "--preset", "paper", "--results", str(store.root))
    assert code == 1
    assert "FAIL    jtt waterbirds dlbd ideal asr: ours 60.0 ± 0.0, paper 0.5 ± 0.3" in out
    assert "FAIL    amplification-boosts-asr" in out
    assert "NOT REPRODUCED" in out


def test_partial_grid_prints_missing(golden_env, run_cli):
    store, write = golden_env
    skip = {json.dumps({"method": "jtt", "dataset": "waterbirds", "attack": "dlbd", "case": c, "seed": s},
                       sort_keys=True) for c, s in [("ideal", 0), ("ideal", 1), ("ideal", 2), ("worst", 2)]}
    write(skip=skip)
    code, out, _ = run_cli("check", "table2", "--preset", "paper", "--results", str(store.root))
    assert code == 1
    assert "| MISSING " in out and "(2/3 seeds)" in out
    assert "MISSING jtt waterbirds dlbd ideal asr: 0/3 seeds finished" in out


def test_filtered_run_skips_rows_outside_the_filter(golden_env, run_cli):
    store, write = golden_env
    write()
    code, out, _ = run_cli("check", "table2", "--preset", "paper", "--results", str(store.root), "--only", "case=ideal")
    assert code == 0
    assert "SKIPPED jtt waterbirds dlbd worst wga: not in the filtered grid (--only)" in out
    assert "SKIPPED amplification-boosts-asr" in out
    assert "PASS    jtt waterbirds dlbd ideal asr" in out


def test_metric_absent_by_design_is_na_not_missing(golden_env):
    from artifact import check, report
    from artifact.config import CheckCfg
    from artifact.grid import TableCfg

    store, write = golden_env
    write()
    table = TableCfg(name="t", title="t", description="", rows=("method", "dataset", "attack", "case"),
                     metrics=("wga", "idnf.lrg2"), grid=())
    from artifact.config import load_preset
    from artifact.grid import expand, load_table

    jobs = expand(load_table("table2"), load_preset("paper"))
    agg = report.aggregate(table, report.collect(table, jobs, store), 3)
    assert "n/a" in report.render(table, agg)
    ok, text, _ = check.run_checks("t", agg, CheckCfg(numbers=False, claims=False), "paper")
    assert ok, text
