"""The quick preset's sanity ranges: what they accept, what they reject, and the clean baseline behind them."""

import dataclasses
import json

import pandas as pd
import pytest

from artifact import check, report
from artifact.config import CheckCfg, load_preset
from artifact.experiments import execute
from artifact.grid import expand, filter_jobs, load_table
from artifact.stages import job_stages
from artifact.store import Store, content_hash

ROWS = ["method", "dataset", "attack", "case"]


def _ranges(values: dict) -> pd.DataFrame:
    """An aggregated range frame (one seed) for the row jtt/waterbirds/dlbd/standard."""
    return pd.DataFrame([{"method": "jtt", "dataset": "waterbirds", "attack": "dlbd", "case": "standard", "metric": m,
                          "mean": v, "std": float("nan"), "n": 1, "n_expected": 1, "na": False}
                         for m, v in values.items()])


def _expected(asr: float) -> pd.DataFrame:
    return pd.DataFrame([{"method": "jtt", "dataset": "waterbirds", "attack": "dlbd", "case": "standard",
                          "metric": "asr", "mean": asr, "std": 1.0}])


def _statuses(values, paper_asr=95.0):
    return {v.what.split()[-1]: v.status for v in check.check_ranges(_ranges(values), ROWS, _expected(paper_asr))}


def test_a_working_pipeline_passes_every_range():
    good = {"wga": 40.0, "asr": 90.0, "asr_clean": 5.0, "pred_min_share": 30.0}
    assert _statuses(good) == {"wga": "PASS", "predictions": "PASS", "backdoor": "PASS"}


@pytest.mark.parametrize("bad, failing", [
    ({"wga": 0.0}, "wga"),
    ({"pred_min_share": 0.0}, "predictions"),  # a constant predictor
    ({"asr": 30.0, "asr_clean": 20.0}, "backdoor"),  # a backdoor barely above a clean model
])
def test_each_range_fails_on_a_broken_result(bad, failing):
    values = {"wga": 40.0, "asr": 90.0, "asr_clean": 5.0, "pred_min_share": 30.0, **bad}
    statuses = _statuses(values)
    assert statuses[failing] == "FAIL"
    assert [k for k, s in statuses.items() if s == "FAIL"] == [failing]


def test_backdoor_range_is_skipped_where_the_paper_reports_no_working_backdoor():
    statuses = _statuses({"asr": 3.0, "asr_clean": 2.0}, paper_asr=4.7)  # e.g. EPIC removed the poisons
    assert statuses == {"backdoor": "SKIPPED"}


def test_run_checks_reports_sanity_not_reproduction():
    agg = _ranges({"wga": 40.0})
    cfg = CheckCfg(numbers=False, claims=False, ranges=True)
    ok, text, _ = check.run_checks("table2", agg, cfg, "quick", ranges=_ranges({"wga": 0.0}))
    assert not ok and "FAIL    jtt waterbirds dlbd standard wga: 0.0 (needs > 0)" in text
    assert text.endswith("-> NOT SANE")
    ok, text, _ = check.run_checks("table2", agg, cfg, "quick", ranges=_ranges({"wga": 12.0}))
    assert ok and "-> SANE" in text and "REPRODUCED" not in text


def test_quick_preset_asks_for_ranges_and_a_clean_baseline_on_backdoor_jobs_only():
    quick = load_preset("quick")
    assert quick.check.ranges and not quick.check.numbers and not quick.check.claims
    jobs = expand(load_table("table2"), quick)
    by_attack = {j.labels["attack"]: "clean_baseline" in j.cfg for j in jobs}
    assert by_attack == {"dlbd": True, "gm": True, "sa": False}  # SA's ASR is already relative to a clean model
    # Presets without it keep their job hashes: no clean_baseline key at all.
    assert not any("clean_baseline" in j.cfg for j in expand(load_table("table2"), load_preset("tiny")))


@pytest.mark.slow
def test_clean_baseline_is_trained_once_and_recorded(tmp_path):
    """A smoke job with the quick preset's clean baseline records asr_clean and the prediction share;
    its ideal sibling reuses the clean model (a stage) instead of training it again."""
    preset = dataclasses.replace(load_preset("smoke"), clean_baseline={"epochs": 1, "lr": 1e-2, "batch_size": 128},
                                 check=CheckCfg(numbers=False, claims=False, ranges=True))
    table = load_table("table2")
    jobs = filter_jobs(expand(table, preset), ["method=jtt", "dataset=waterbirds", "attack=dlbd"])
    rt = {"device": "cpu", "threads": 1}
    for job in jobs[:2]:
        assert execute(job.cfg, str(tmp_path), rt)["status"] == "done", (tmp_path / "jobs" / job.id / "error.txt")
    store = Store(str(tmp_path))
    metrics = [json.loads((tmp_path / "jobs" / j.id / "result.json").read_text())["metrics"] for j in jobs[:2]]
    assert all(0 <= m["asr_clean"] <= 100 and 0 <= m["pred_min_share"] <= 50 for m in metrics)
    assert metrics[0]["asr_clean"] == metrics[1]["asr_clean"]
    baselines = {content_hash(s.key) for j in jobs[:2] for s in job_stages(j.cfg) if s.key.get("tag") == "clean-baseline"}
    assert len(baselines) == 1  # one clean model for both cases
    probe = dataclasses.replace(table, metrics=check.RANGE_METRICS)
    ranges = report.aggregate(probe, report.collect(probe, jobs[:2], store), 1)
    verdicts = check.check_ranges(ranges, list(table.rows), None)
    assert {v.what.split()[-1] for v in verdicts} == {"wga", "predictions", "backdoor"}


def _lines(values, expected=None):
    """check_ranges' lines for `values` ({metric: mean} of the one row) or a whole range frame."""
    frame = values if isinstance(values, pd.DataFrame) else _ranges(values)
    return [v.line() for v in check.check_ranges(frame, ROWS, expected)]


def test_each_range_at_its_bound_with_its_whole_line():
    row = "jtt waterbirds dlbd standard"
    assert _lines({"wga": 0.5, "pred_min_share": 1.0, "asr": 45.0, "asr_clean": 25.0}, _expected(50.0)) == [
        f"PASS    {row} wga: 0.5 (needs > 0)",
        f"PASS    {row} predictions: least-predicted class gets 1.0 % (needs >= 1)",
        f"PASS    {row} backdoor: ASR 45.0 − clean model's 25.0 = 20.0 (needs >= 20; the paper's ASR 50.0)"]
    assert _lines({"pred_min_share": 0.9}) == [f"FAIL    {row} predictions: least-predicted class gets 0.9 % (needs >= 1)"]
    assert _lines({"asr": 45.0, "asr_clean": 25.5}, _expected(50.0)) == [
        f"FAIL    {row} backdoor: ASR 45.0 − clean model's 25.5 = 19.5 (needs >= 20; the paper's ASR 50.0)"]


def test_the_backdoor_range_is_skipped_without_a_working_paper_asr():
    row = "jtt waterbirds dlbd standard"
    detail = "ASR 90.0 − clean model's 5.0 = 85.0"
    values = {"asr": 90.0, "asr_clean": 5.0}
    assert _lines(values, None) == [f"SKIPPED {row} backdoor: {detail}; the paper's ASR here is not reported"]
    assert _lines(values, _expected(float("nan"))) == [
        f"SKIPPED {row} backdoor: {detail}; the paper's ASR here is not reported"]
    assert _lines(values, _expected(49.9)) == [f"SKIPPED {row} backdoor: {detail}; the paper's ASR here is 49.9"]
    other_row = _expected(95.0).assign(case="ideal")  # the paper has no number for this row
    assert _lines(values, other_row) == [f"SKIPPED {row} backdoor: {detail}; the paper's ASR here is not reported"]
    assert _lines({"asr": 90.0}, _expected(95.0)) == []  # no clean model: nothing to compare with


def test_ranges_keep_the_row_order_and_ignore_unfinished_or_undefined_values():
    two = pd.concat([_ranges({"wga": 5.0}).assign(case="worst"), _ranges({"wga": 6.0}).assign(case="ideal")])
    assert _lines(two) == ["PASS    jtt waterbirds dlbd worst wga: 5.0 (needs > 0)",
                           "PASS    jtt waterbirds dlbd ideal wga: 6.0 (needs > 0)"]
    unfinished = _ranges({"wga": 0.0}).assign(n=0)  # a stale mean without a finished seed is not judged
    undefined = _ranges({"wga": float("nan")})
    assert _lines(unfinished) == [] and _lines(undefined) == []


def test_run_checks_judges_ranges_with_the_papers_asr():
    agg = _ranges({"wga": 40.0})
    cfg = CheckCfg(numbers=False, claims=False, ranges=True)
    ranges = _ranges({"asr": 90.0, "asr_clean": 5.0}).assign(dataset="celeba")  # the paper's ASR here: 97.7
    ok, text, verdicts = check.run_checks("table2", agg, cfg, "quick", ranges=ranges)
    assert ok and "Sanity ranges:" in text.splitlines()
    assert [(v.section, v.status) for v in verdicts][-1] == ("Sanity ranges", "PASS")
