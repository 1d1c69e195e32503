"""The `baseline` target: ERM and JTT without poisons against the JTT paper's Table 1, whose numbers have no
standard deviations, and the regime claims the tiny preset must meet."""

from __future__ import annotations

import pandas as pd

from artifact import metrics
from artifact.check import check_claims, check_numbers, load_expected


def _agg(values: dict) -> pd.DataFrame:
    """An aggregate of 3 seeds: {(method, dataset, metric): mean}."""
    rows = [{"method": m, "dataset": d, "metric": k, "mean": v, "std": 0.5, "n": 3, "n_expected": 3, "na": False}
            for (m, d, k), v in values.items()]
    return pd.DataFrame(rows)


REGIME = {("erm", "waterbirds", "acc"): 95.0, ("erm", "waterbirds", "wga"): 40.0,
          ("erm", "waterbirds", "worst_is_lrg"): 100.0, ("jtt", "waterbirds", "wga"): 70.0,
          ("jtt", "waterbirds", "acc"): 90.0}


def _statuses(values: dict, preset: str = "tiny") -> dict:
    return {v.what.split(" ")[0]: v.status for v in check_claims(_agg(values), load_expected("baseline")[1],
                                                                  preset=preset)}


def test_regime_claims_pass_on_the_regime():
    assert set(_statuses(REGIME).values()) == {"PASS"}


def test_each_regime_claim_can_fail():
    assert _statuses({**REGIME, ("erm", "waterbirds", "acc"): 85.0})["erm-accurate-on-average"] == "FAIL"
    assert _statuses({**REGIME, ("erm", "waterbirds", "wga"): 90.0})["erm-wga-well-below-acc"] == "FAIL"
    assert _statuses({**REGIME, ("erm", "waterbirds", "worst_is_lrg"): 66.7})["erm-worst-group-is-a-minority"] == "FAIL"
    assert _statuses({**REGIME, ("jtt", "waterbirds", "wga"): 40.0})["jtt-improves-wga"] == "FAIL"  # equal: not above


def test_paper_numbers_without_sd_are_compared_with_our_sd_and_the_floor():
    expected = load_expected("baseline")[0]
    assert expected["std"].isna().all()  # the JTT paper's Table 1 gives none
    row = expected[(expected.method == "jtt") & (expected.dataset == "waterbirds") & (expected.metric == "wga")]
    near = _agg({("jtt", "waterbirds", "wga"): 86.7 + 1.9})  # tol = 2 x 0.5 + 1 = 2.0
    far = _agg({("jtt", "waterbirds", "wga"): 86.7 + 2.1})
    assert [v.status for v in check_numbers(near, row, k=2.0, floor=1.0)] == ["PASS"]
    verdict = check_numbers(far, row, k=2.0, floor=1.0)[0]
    assert verdict.status == "FAIL" and "no sd" in verdict.detail


def test_worst_is_lrg_names_the_worst_group_s_role():
    assert metrics.worst_is_lrg([99.0, 80.0, 60.0, 95.0], [2, 1]) == 100.0
    assert metrics.worst_is_lrg([50.0, 80.0, 60.0, 95.0], [2, 1]) == 0.0
    assert metrics.worst_is_lrg([float("nan"), 80.0, 60.0, 40.0], [3]) == 100.0  # empty groups do not count
