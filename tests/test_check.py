"""The checker's rule at its edges, through its public functions: a cell exactly at the tolerance passes,
each claim operator at its bound, the states MISSING / SKIPPED / n/a, and what makes a verdict fail.
(The whole path from result files to the printed verdict is pinned by test_golden.py.)"""

import math

import pandas as pd
import pytest

from artifact import check
from artifact.config import CheckCfg
from artifact.errors import UserError


def _agg(cells: dict, n: int = 3, n_expected: int = 3) -> pd.DataFrame:
    """An aggregate (report.aggregate's layout) with rows case x metric: {(case, metric): (mean, std)}."""
    return pd.DataFrame([{"case": c, "metric": m, "mean": mean, "std": std, "n": n, "n_expected": n_expected,
                          "na": False} for (c, m), (mean, std) in cells.items()])


def _expected(rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{"case": c, "metric": m, "mean": mean, "std": std} for (c, m), (mean, std) in rows.items()])


def _numbers(ours, paper, k=2.0, floor=1.0, **kw):
    return check.check_numbers(_agg({("standard", "wga"): ours}, **kw), _expected({("standard", "wga"): paper}),
                               k, floor)


@pytest.mark.parametrize("ours, paper, k, floor, status", [
    ((51.0, 0.0), (50.0, 0.0), 2.0, 1.0, "PASS"),  # |Δ| = floor exactly
    ((51.5, 0.0), (50.0, 0.0), 2.0, 1.0, "FAIL"),
    ((44.0, 0.0), (50.0, 2.5), 2.0, 1.0, "PASS"),  # |Δ| = 6 = 2 · 2.5 + 1: the paper's std counts
    ((56.0, 2.5), (50.0, 0.0), 2.0, 1.0, "PASS"),  # ... and ours
    ((57.0, 3.0), (50.0, 4.0), 1.0, 2.0, "PASS"),  # 1 · hypot(3, 4) + 2 = 7
    ((57.5, 3.0), (50.0, 4.0), 1.0, 2.0, "FAIL"),
    ((60.0, math.nan), (50.0, 4.5), 2.0, 1.0, "PASS"),  # one seed: sd_ours 0, not NaN
    ((60.5, math.nan), (50.0, 4.5), 2.0, 1.0, "FAIL"),
    ((51.0, math.nan), (50.0, 0.0), 2.0, 0.5, "FAIL"),  # ... so the floor alone is the tolerance
])
def test_a_cell_passes_within_k_combined_stds_plus_the_floor(ours, paper, k, floor, status):
    (v,) = _numbers(ours, paper, k, floor)
    assert v.status == status, v.line()
    assert v.what == "standard wga"


def test_cell_detail_shows_both_sides_and_the_tolerance():
    (v,) = _numbers((44.0, 1.4), (50.0, 2.0))
    assert v.line() == "FAIL    standard wga: ours 44.0 ± 1.4, paper 50.0 ± 2.0, |Δ| 6.0 > tol 5.9"
    (v,) = _numbers((49.0, 0.0), (50.0, 2.0))
    assert v.line() == "PASS    standard wga: ours 49.0 ± 0.0, paper 50.0 ± 2.0, |Δ| 1.0 <= tol 5.0"


def test_cells_without_results_are_missing_unless_filtered_or_na_in_the_paper():
    expected = _expected({("worst", "wga"): (math.nan, math.nan), ("ideal", "wga"): (60.0, 1.0),
                          ("standard", "wga"): (50.0, 1.0)})
    agg = pd.concat([_agg({("standard", "wga"): (50.0, 0.0)}), _agg({("ideal", "wga"): (math.nan, math.nan)}, n=0)])
    assert [v.line() for v in check.check_numbers(agg, expected, 2.0, 1.0)] == [
        "SKIPPED worst wga: N/A in the paper",
        "MISSING ideal wga: no result",
        "PASS    standard wga: ours 50.0 ± 0.0, paper 50.0 ± 1.0, |Δ| 0.0 <= tol 3.0"]
    only_standard = _agg({("standard", "wga"): (50.0, 0.0)})
    assert [v.status for v in check.check_numbers(only_standard, expected, 2.0, 1.0)] == ["SKIPPED", "MISSING", "PASS"]
    assert [v.line() for v in check.check_numbers(only_standard, expected, 2.0, 1.0, filtered=True)][:2] == [
        "SKIPPED worst wga: N/A in the paper", "SKIPPED ideal wga: not in the filtered grid (--only)"]
    # Filtered, a row that is in the grid but has no finished seed stays MISSING.
    assert [v.status for v in check.check_numbers(agg, expected, 2.0, 1.0, filtered=True)][1] == "MISSING"


CELLS = {("standard", "asr"): (80.0, 0.0), ("ideal", "asr"): (20.0, 0.0), ("worst", "asr"): (90.0, 0.0),
         ("standard", "wga"): (74.0, 0.0)}


def _claim(op, value, left=("standard", "asr"), right=("ideal", "asr")):
    c = {"id": "c", "text": "t", "left": {"case": left[0], "metric": left[1]}, "op": op, "value": value}
    if right:
        c["right"] = {"case": right[0], "metric": right[1]}
    return c


@pytest.mark.parametrize("claim, status", [
    (_claim(">=", 60.0), "PASS"),  # 80 − 20 = 60, at the bound
    (_claim(">=", 60.5), "FAIL"),
    (_claim("<=", 60.0), "PASS"),
    (_claim("<=", 59.5), "FAIL"),
    (_claim("abs<=", 10.0, ("standard", "asr"), ("worst", "asr")), "PASS"),  # |80 − 90| = 10
    (_claim("abs<=", 9.5, ("standard", "asr"), ("worst", "asr")), "FAIL"),
    (_claim("<=", -10.0, ("standard", "asr"), ("worst", "asr")), "PASS"),  # signed: 80 − 90 = −10
    (_claim(">=", 74.0, ("standard", "wga"), None), "PASS"),  # no right side: the left mean itself
    (_claim(">=", 74.5, ("standard", "wga"), None), "FAIL"),
])
def test_each_claim_operator_at_its_bound(claim, status):
    (v,) = check.check_claims(_agg(CELLS), [claim])
    assert v.status == status, v.line()


def test_claim_detail_names_both_sides():
    (v,) = check.check_claims(_agg(CELLS), [_claim(">=", 5.0)])
    assert v.line() == "PASS    c []: ASR standard − ASR ideal = 60.0 (needs >= 5.0)"
    (v,) = check.check_claims(_agg(CELLS), [_claim(">=", 74.0, ("standard", "wga"), None)])
    assert v.detail == "WGA standard = 74.0 (needs >= 74.0)"


def test_claims_repeat_per_block_and_go_missing_without_their_cells():
    agg = pd.concat([_agg(CELLS).assign(attack="dlbd"), _agg({**CELLS, ("standard", "asr"): (21.0, 0.0)}).assign(
        attack="sa")])[["attack", "case", "metric", "mean", "std", "n", "n_expected", "na"]]
    claim = {**_claim(">=", 5.0), "group_by": ["attack"]}
    assert [(v.what, v.status) for v in check.check_claims(agg, [claim])] == \
        [("c [attack=dlbd]", "PASS"), ("c [attack=sa]", "FAIL")]
    where = {**_claim(">=", 5.0), "where": {"attack": "sa"}}
    assert [(v.what, v.status) for v in check.check_claims(agg, [where])] == [("c [attack=sa]", "FAIL")]
    unfinished = _agg({**CELLS, ("ideal", "asr"): (math.nan, math.nan)}).assign(
        n=lambda d: d["n"].where(d["case"] != "ideal", 0))
    (v,) = check.check_claims(unfinished, [_claim(">=", 5.0)], filtered=True)
    assert v.line() == "MISSING c []: cells for 't' not found"  # in the grid, not finished
    partial = agg[(agg["attack"] == "sa") | (agg["case"] != "ideal")]  # dlbd's ideal row is gone, sa's is not
    assert [v.line() for v in check.check_claims(partial, [claim])] == [
        "MISSING c [attack=dlbd]: cells for 't' not found", "FAIL    c [attack=sa]: ASR standard − ASR ideal = 1.0 "
                                                             "(needs >= 5.0)"]
    assert [v.line() for v in check.check_claims(partial, [claim], filtered=True)][0] == \
        "SKIPPED c [attack=dlbd]: its rows are not in the filtered grid (--only)"
    (v,) = check.check_claims(_agg({("standard", "asr"): (80.0, 0.0)}), [_claim(">=", 5.0)])
    assert v.status == "MISSING"


def test_a_claim_on_an_unknown_column_is_a_user_error():
    with pytest.raises(UserError, match=r"unknown column 'dataset' \(valid: case, metric"):
        check.check_claims(_agg(CELLS), [{**_claim(">=", 5.0), "where": {"dataset": "waterbirds"}}])


def test_sanity_flags_missing_seeds_and_values_that_are_not_percentages():
    assert [v.status for v in check.sanity(_agg(CELLS))] == ["PASS"]
    assert check.sanity(_agg(CELLS))[0].detail == "4 cells complete, finite and within [-100, 100]"
    assert [v.line() for v in check.sanity(_agg(CELLS, n=2))][0] == "MISSING standard asr: 2/3 seeds finished"
    for bad in (math.inf, math.nan, 100.5, -100.5):
        (v,) = check.sanity(_agg({("standard", "wga"): (bad, 0.0)}))
        assert v.line() == f"FAIL    standard wga: value {bad} is not a percentage"
    for edge in (100.0, -100.0):
        assert check.sanity(_agg({("standard", "wga"): (edge, 0.0)}))[0].status == "PASS"
    na = _agg({("standard", "wga"): (math.nan, math.nan)}).assign(na=True)
    assert [v.status for v in check.sanity(na)] == ["PASS"]  # absent by design: not a failure
    after_na = pd.concat([na, _agg({("ideal", "wga"): (101.0, 0.0)})])
    assert [v.line() for v in check.sanity(after_na)] == ["FAIL    ideal wga: value 101.0 is not a percentage"]
    # An aggregate without the `na` column (hand-made, or written before it existed) is checked in full.
    without_na = _agg({("standard", "wga"): (101.0, 0.0)}).drop(columns="na")
    assert [v.status for v in check.sanity(without_na)] == ["FAIL"]


def test_load_expected_validates_claims(tmp_path):
    (tmp_path / "t.claims.yaml").write_text("claims:\n  - {id: a, text: t, left: {metric: wga}, op: '==', value: 1}\n")
    with pytest.raises(UserError, match=r"t.claims.yaml: claim a: needs id, text, left, op \(>=, <=, .*abs<=\), value"):
        check.load_expected("t", tmp_path)
    (tmp_path / "t.claims.yaml").write_text("claims:\n  - {id: b, text: t, left: {metric: wga}, op: '>='}\n")
    with pytest.raises(UserError, match="claim b: needs"):
        check.load_expected("t", tmp_path)
    (tmp_path / "t.claims.yaml").write_text("claims:\n  - {id: c, text: t, left: {metric: wga}, op: '>=', value: 1}\n")
    (tmp_path / "t.csv").write_text("case,metric,mean,std\nstandard,wga,50,1\n")
    numbers, claims = check.load_expected("t", tmp_path)
    assert numbers.to_dict("records") == [{"case": "standard", "metric": "wga", "mean": 50, "std": 1}]
    assert [c["id"] for c in claims] == ["c"]
    assert check.load_expected("absent", tmp_path) == (None, [])


def test_run_checks_verdict_and_report(tmp_path):
    (tmp_path / "t.csv").write_text("case,metric,mean,std\nstandard,wga,74,0\n")
    (tmp_path / "t.claims.yaml").write_text("claims:\n  - {id: boost, text: t, left: {case: standard, metric: asr},"
                                            " right: {case: ideal, metric: asr}, op: '>=', value: 5}\n")
    paper = CheckCfg(numbers=True, claims=True, k=2.0, floor=1.0)
    ok, text, verdicts = check.run_checks("t", _agg(CELLS), paper, "paper", where=tmp_path)
    assert ok and [v.status for v in verdicts] == ["PASS", "PASS", "PASS"]
    lines = text.splitlines()
    assert lines[0] == "Checker: t (preset paper, 3 seed(s) per cell)"
    assert lines[1] == "Rule: cells within 2·sqrt(sd_paper² + sd_ours²) + 1 pts; the paper's claims"
    assert lines[-1] == "Summary: 3 PASS, 0 FAIL, 0 MISSING -> REPRODUCED"
    assert "Cells vs the paper:" in lines and "The paper's claims:" in lines
    worse = _agg({**CELLS, ("ideal", "asr"): (78.0, 0.0)})
    ok, text, _ = check.run_checks("t", worse, paper, "paper", where=tmp_path)
    assert not ok and text.endswith("Summary: 2 PASS, 1 FAIL, 0 MISSING -> NOT REPRODUCED")
    ok, text, _ = check.run_checks("t", _agg(CELLS, n=2), paper, "paper", where=tmp_path)
    assert not ok and "1 MISSING" not in text and "4 MISSING" in text  # one per unfinished cell
    claims_only = CheckCfg(numbers=False, claims=True)
    ok, text, verdicts = check.run_checks("t", _agg(CELLS), claims_only, "tiny", where=tmp_path)
    assert ok and len(verdicts) == 2 and "Cells vs the paper:" not in text
    assert "per-cell numbers not compared at this preset" in text.splitlines()[1]
    ok, text, _ = check.run_checks("t", _agg(CELLS), CheckCfg(numbers=False, claims=False), "smoke", where=tmp_path)
    assert ok and text.endswith("-> SANE (no paper number or claim checked)")
    assert "completeness and sanity only" in text.splitlines()[1]
    ok, text, _ = check.run_checks("t", _agg(CELLS, n=2), CheckCfg(numbers=False, claims=False), "smoke",
                                   where=tmp_path)
    assert not ok and text.endswith("-> NOT SANE")
    ok, text, _ = check.run_checks("t", _agg({("ideal", "wga"): (1.0, 0.0)}), paper, "paper", where=tmp_path,
                                   filtered=True)
    assert ok and text.endswith("Summary: 1 PASS, 0 FAIL, 0 MISSING, 2 SKIPPED -> REPRODUCED")


def test_a_bound_or_last_on_labels_compares_numbers_and_matches_no_text():
    column = pd.Series(["2", "x", "8"])
    assert check._matches(column, {">=": 4}).tolist() == [False, False, True]
    assert check._matches(column, {"<": "4"}).tolist() == [True, False, False]
    assert check._matches(column, "LAST").tolist() == [False, False, True]
    assert check._matches(column, " X").tolist() == [False, True, False]


def test_each_verdict_names_its_cell_or_claim_for_the_report():
    (missing,) = check.sanity(_agg({("standard", "asr"): (50.0, 0.0)}, n=2))
    (bad,) = check.sanity(_agg({("ideal", "wga"): (101.0, 0.0)}))
    assert (missing.cell, bad.cell) == ({"case": "standard", "metric": "asr"}, {"case": "ideal", "metric": "wga"})
    expected = _expected({("worst", "wga"): (math.nan, math.nan), ("ideal", "wga"): (60.0, 1.0),
                          ("standard", "wga"): (50.0, 1.0)})
    agg = _agg({("standard", "wga"): (50.0, 0.0)})
    cells = [v.cell for v in check.check_numbers(agg, expected, 2.0, 1.0)]
    assert cells == [{"case": c, "metric": "wga"} for c in ("worst", "ideal", "standard")]
    assert [v.cell for v in check.check_numbers(agg, expected, 2.0, 1.0, filtered=True)][1] == \
        {"case": "ideal", "metric": "wga"}
    claims = [_claim(">=", 5.0), {**_claim(">=", 5.0, right=("absent", "asr")), "id": "gone"},
              {**_claim(">=", 5.0), "id": "p", "presets": ["paper", "quick"]}]
    verdicts = check.check_claims(_agg(CELLS), claims, preset="tiny")
    assert [(v.status, v.claim) for v in verdicts] == [("PASS", claims[0]), ("MISSING", claims[1]),
                                                       ("SKIPPED", claims[2])]
    assert verdicts[2].line() == "SKIPPED p: a threshold meant for preset(s) paper, quick"
    (skipped,) = check.check_claims(_agg(CELLS), claims[1:2], filtered=True)
    assert skipped.status == "SKIPPED" and skipped.claim == claims[1]
    assert [v.status for v in check.check_claims(_agg(CELLS), claims[2:], preset="paper")] == ["PASS"]


def test_entropies_are_judged_and_shown_in_bits():
    (v,) = check.check_numbers(_agg({("standard", "entropy.clean"): (0.512, 0.01)}),
                               _expected({("standard", "entropy.clean"): (0.5, 0.02)}), 2.0, 1.0)
    assert v.line() == "PASS    standard entropy.clean: ours 0.512 ± 0.010, paper 0.500 ± 0.020, |Δ| 0.012 <= tol 0.055"
    (v,) = check.sanity(_agg({("standard", "entropy.clean"): (1.5, 0.0)}))
    assert v.line() == "FAIL    standard entropy.clean: value 1.5 is not within ±1"
    (v,) = check.sanity(_agg({("standard", "entropy.clean"): (0.5, 0.0), ("standard", "wga"): (50.0, 0.0)}))
    assert v.detail == "2 cells complete, finite and within each metric's range (entropies ±1 bit, the rest ±100)"
    (v,) = check.sanity(_agg({}))
    assert v.line() == "PASS    all cells: 0 cells complete, finite and within [-100, 100]"


def test_a_claims_scope_shows_bounds_and_its_sides_every_label():
    agg = _agg(CELLS).assign(es=4)[["case", "es", "metric", "mean", "std", "n", "n_expected", "na"]]
    claim = {"id": "c", "text": "t", "left": {"case": "standard", "es": 4, "metric": "asr"},
             "right": {"case": "ideal", "metric": "asr"}, "op": ">=", "value": 5.0, "where": {"es": {">=": 2}}}
    (v,) = check.check_claims(agg, [claim])
    assert v.line() == "PASS    c [es=>=2]: ASR standard 4 − ASR ideal = 60.0 (needs >= 5.0)"


def test_run_checks_sections_rules_and_verdict_words(tmp_path):
    (tmp_path / "t.csv").write_text("case,metric,mean,std\nstandard,wga,74,0\nideal,wga,60,0\n")
    (tmp_path / "t.claims.yaml").write_text("claims:\n  - {id: boost, text: t, left: {case: standard, metric: asr},"
                                            " right: {case: ideal, metric: asr}, op: '>=', value: 5, "
                                            "presets: [paper]}\n")
    numbers_only = CheckCfg(numbers=True, claims=False, k=2.0, floor=1.0)
    ok, text, verdicts = check.run_checks("t", _agg(CELLS), numbers_only, "paper", where=tmp_path)
    assert not ok and text.endswith("Summary: 2 PASS, 0 FAIL, 1 MISSING -> NOT REPRODUCED")  # unfiltered: MISSING
    assert [v.section for v in verdicts] == ["Completeness and sanity", "Cells vs the paper", "Cells vs the paper"]
    claims_only = CheckCfg(numbers=False, claims=True)
    ok, text, verdicts = check.run_checks("t", _agg(CELLS), claims_only, "tiny", where=tmp_path)
    assert ok and text.endswith("Summary: 1 PASS, 0 FAIL, 0 MISSING, 1 SKIPPED -> REPRODUCED")
    assert text.splitlines()[1] == ("Rule: the paper's claims; per-cell numbers not compared at this preset (its "
                                    "data and models differ from the paper's)")
    assert [v.section for v in verdicts] == ["Completeness and sanity", "The paper's claims"]
    ok, text, _ = check.run_checks("t", _agg(CELLS), claims_only, "paper", where=tmp_path)
    assert ok and "SKIPPED" not in text and text.endswith("Summary: 2 PASS, 0 FAIL, 0 MISSING -> REPRODUCED")
    ranges = _agg({("standard", "wga"): (0.0, 0.0)})  # ranges given, but this preset does not check them
    ok, text, _ = check.run_checks("t", _agg(CELLS), CheckCfg(numbers=False, claims=False), "smoke", where=tmp_path,
                                   ranges=ranges)
    assert ok and "Sanity ranges" not in text
    assert text.splitlines()[1] == "Rule: completeness and sanity only (this preset is for exercising code paths)"
    ok, text, _ = check.run_checks("t", _agg({}), claims_only, "tiny", where=tmp_path)
    assert text.splitlines()[0] == "Checker: t (preset tiny, 0 seed(s) per cell)"
