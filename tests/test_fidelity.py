"""What the paper's numbers mean: ACC per dataset, the poison count, and the checker's scale per metric."""

import math

import pytest

from artifact import metrics
from artifact.attacks import poison_count
from artifact.config import DatasetCfg
from artifact.data import load_dataset
from artifact.errors import UserError


@pytest.mark.parametrize("name, weighted", [("synth-waterbirds", True), ("synth-celeba", False)])
def test_each_synthetic_dataset_reports_its_papers_acc(name, weighted):
    assert load_dataset(DatasetCfg(name=name, scale=0.05), None).acc_weighted is weighted


def test_real_datasets_report_their_papers_acc():
    from artifact.data import celeba, waterbirds

    assert waterbirds.SPEC.roles.acc_weighted is True  # JTT's 93.3 / 97.3 % are train-weighted group averages
    assert celeba.SPEC.roles.acc_weighted is False  # CelebA's train and test proportions agree: plain accuracy


def test_reported_acc_is_the_train_weighted_average_only_where_asked():
    # A balanced test split, a model right on the majority groups only: plain ACC 50 %, weighted ~96 %.
    y = [0, 0, 1, 1]
    pred = [0, 1, 1, 0]
    g = [0, 1, 3, 2]
    ga = metrics.group_acc(pred, y, g)
    w = (3498 / 4795, 184 / 4795, 56 / 4795, 1057 / 4795)
    assert metrics.reported_acc(pred, y, ga, w, weighted=False) == 50.0
    assert metrics.reported_acc(pred, y, ga, w, weighted=True) == pytest.approx(100 * (3498 + 1057) / 4795)


def test_poison_count_is_the_floor():
    assert poison_count(0.01, 4795) == 47  # the paper's DLBD IDNF 98.5 ± 1.2 is reachable only with 47
    assert poison_count(0.29, 100) == 29  # 0.29 * 100 = 28.999... in floating point
    assert poison_count(0.02, 4795) == math.floor(0.02 * 4795)
    assert poison_count(0.001, 500) == 1  # a scaled-down preset still plants one


def test_dlbd_plants_floor_rate_n_poisons():
    from artifact.attacks.dlbd import DLBD, Params

    data = load_dataset(DatasetCfg(name="synth-waterbirds", scale=0.1), None)
    poisoned, info = DLBD().poison(data, Params(rate=0.01), seed=0)
    assert info["n_poison"] == int(poisoned.train.is_poison.sum()) == math.floor(0.01 * len(data.train))


# --- the checker: scales, claims as the paper words them --------------------------------------------

def _paper_agg(table: str, edit=None):
    """The paper's own numbers as an aggregate (3 seeds), optionally edited: {(labels..., metric): mean}."""
    import pandas as pd

    from artifact.check import load_expected

    expected, _ = load_expected(table)
    agg = expected.copy()
    agg["n"], agg["n_expected"], agg["na"] = 3, 3, False
    labels = [c for c in expected.columns if c not in ("metric", "mean", "std")]
    for key, value in (edit or {}).items():
        mask = pd.Series(True, index=agg.index)
        for c, v in zip([*labels, "metric"], key, strict=True):
            mask &= agg[c].astype(str) == str(v)
        assert mask.sum() == 1, key
        agg.loc[mask, "mean"] = value
    cols = [*labels, "metric", "mean", "std", "n", "n_expected", "na"]
    return agg[cols]


def _claims(table: str, agg, preset: str = "paper"):
    from artifact.check import check_claims, load_expected

    return check_claims(agg, load_expected(table)[1], preset=preset)


TABLES_WITH_NUMBERS = ["baseline", *(f"table{i}" for i in range(1, 13))]


@pytest.mark.parametrize("table", TABLES_WITH_NUMBERS)
def test_no_claim_fails_on_the_papers_own_numbers(table):
    verdicts = _claims(table, _paper_agg(table))
    assert [v.line() for v in verdicts if v.status == "FAIL"] == []
    assert any(v.status == "PASS" for v in verdicts)


def test_every_absolute_claim_names_its_presets():
    import glob

    import yaml

    for path in glob.glob(str(__import__("artifact.check").check.expected_dir() / "*.claims.yaml")):
        for c in yaml.safe_load(open(path))["claims"]:
            assert c.get("right") or c.get("presets"), f"{path}: {c['id']}"


def test_table11_fails_on_wrong_entropies():
    """Entropies are in bits: the 1-point floor is 0.01 bit there, not 1 (which let any entropy pass)."""
    from artifact.check import check_numbers, load_expected

    expected, _ = load_expected("table11")
    zero = {("strip", "waterbirds", "dlbd", f"entropy.{r}"): 0.0 for r in ("hrg", "lrg1", "lrg2", "poisons")}
    verdicts = check_numbers(_paper_agg("table11", zero), expected, k=2.0, floor=1.0)
    assert [v.status for v in verdicts] == ["FAIL"] * 4
    assert all(v.status == "PASS" for v in check_numbers(_paper_agg("table11"), expected, k=2.0, floor=1.0))
    off = {("strip", "waterbirds", "dlbd", "entropy.hrg"): 0.93 + 0.12}  # tol = 2 * hypot(0.03, 0.03) + 0.01
    assert check_numbers(_paper_agg("table11", off), expected, k=2.0, floor=1.0)[0].status == "FAIL"


def _status(verdicts, claim_id, scope=""):
    return [v.status for v in verdicts if v.what.startswith(claim_id) and scope in v.what]


def test_table1_poisons_must_reach_lrg1s_idnf():
    row = ("jtt", "waterbirds", "dlbd")
    below = {(*row, "idnf.poisons"): 95.0, (*row, "idnf.lrg1"): 96.0}  # -1 pt passed the old >= -5
    statuses = _status(_claims("table1", _paper_agg("table1", below)), "poisons-as-likely-as-lrg1", "attack=dlbd")
    assert "FAIL" in statuses


def test_table3_gm_asr_must_be_equal_across_cases():
    verdicts = _claims("table3", _paper_agg("table3", {("waterbirds", "gm", "ideal", "asr"): 6.7}))
    assert _status(verdicts, "gm-asr-same-in-every-case") == ["FAIL", "PASS"]


def test_table12_trend_is_monotone_and_the_sentence_numbers_hold_at_paper_only():
    verdicts = _claims("table12", _paper_agg("table12", {("standard", 5, "asr"): 15.0}))  # 14.8 -> 15 -> 0.9
    assert _status(verdicts, "later-stop-lower-asr") == ["FAIL", "PASS"]
    worse = {("ideal", 0, "wga"): 79.0, ("standard", 7, "wga"): 45.0, ("standard", 5, "acc"): 79.0}
    verdicts = _claims("table12", _paper_agg("table12", worse))
    assert _status(verdicts, "ideal-epic-wga-over-80") == ["FAIL"]
    assert _status(verdicts, "latest-stop-costs-35-wga") == ["FAIL"]
    assert "FAIL" in _status(verdicts, "acc-over-80")
    at_tiny = _claims("table12", _paper_agg("table12", worse), preset="tiny")
    assert _status(at_tiny, "ideal-epic-wga-over-80") == ["SKIPPED"]
    assert _status(at_tiny, "low-asr-costs-wga") == ["PASS"]  # the relative claim holds everywhere


def test_unknown_preset_in_a_claim_is_a_one_line_error(tmp_path, monkeypatch):
    from artifact.check import load_expected

    (tmp_path / "table1.claims.yaml").write_text(
        "claims:\n  - {id: x, text: t, left: {metric: wga}, op: '>=', value: 1, presets: [papr]}\n")
    with pytest.raises(UserError, match="unknown preset 'papr'"):
        load_expected("table1", tmp_path)


def test_figure1_claims_hold_at_every_iteration_from_the_second(tmp_path):
    """ELMF per iteration: a gap at iteration 2 fails even when the last iteration is fine."""
    from artifact import report
    from artifact.check import check_claims, load_expected
    from artifact.config import load_preset
    from artifact.grid import expand, load_table
    from artifact.store import Store

    table, store = load_table("figure1"), Store(tmp_path)
    jobs = expand(table, load_preset("tiny"))
    for job in jobs:
        curve = [{"iteration": i, "epoch": i, "poisons": p, "lrg1": l1, "hrg": 2.0}
                 for i, (p, l1) in enumerate([(10.0, 5.0), (60.0, 30.0), (99.0, 95.0)], start=1)]
        store.write_result(job.id, {"id": job.id, "metrics": {"elmf_curve": curve, "acc": 90.0, "wga": 70.0}})
    agg = report.aggregate(table, report.collect(table, jobs, store), 3)
    assert sorted(set(agg["iteration"])) == [1, 2, 3]
    verdicts = check_claims(agg, load_expected("figure1")[1], preset="tiny")
    close = {v.what: v.status for v in verdicts if v.what.startswith("lrg1-eliminated-like-poisons")}
    assert all(s == "FAIL" for w, s in close.items() if "iteration=2" in w)  # 60 vs 30: not close
    assert all(s == "PASS" for w, s in close.items() if "iteration=3" in w)
    assert not any("iteration=1" in w for w in close)  # the first iteration is not judged
    assert set(_status(verdicts, "poisons-almost-all-eliminated")) == {"PASS"}  # 99 at the last iteration


# --- GEORGE: a fixed k or the silhouette search ---------------------------------------------------

def test_george_fixed_k_fits_only_that_k_and_keys_its_own_stage():
    import numpy as np

    from artifact.config import build
    from artifact.methods.george import George, Params, fit_clusters

    x = np.concatenate([np.random.default_rng(0).normal(m, 0.1, (40, 1)) for m in (0.0, 1.0, 2.0, 3.0)])
    _, keep, scores = fit_clusters(x, "gmm", 10, 3, seed=0)
    assert len(scores) == 9 and len(keep) == 4  # the search finds the four blobs
    _, keep, scores = fit_clusters(x, "gmm", 10, 3, seed=0, fixed_k=2)
    assert list(scores) == [2] and len(keep) == 2
    searched, fixed = George.cluster_key(Params()), George.cluster_key(Params(k=2))
    assert "k" not in searched and fixed == {**searched, "k": 2}  # searched clusters keep their cache key
    with pytest.raises(UserError, match="k must be 0"):
        build(Params, {"k": 1}, "method.params")


def test_the_epic_ablation_is_listed_and_not_part_of_all(run_cli):
    from artifact.pipeline import targets as _targets

    code, out, _ = run_cli("--list")
    assert code == 0 and "ablation-epic" in out
    assert "ablation-epic" not in _targets("all") and "figure1" in _targets("all")
    assert _targets("ablation-epic") == ["ablation-epic"]


# --- Table 8: a from-scratch recipe chosen on the validation split ---------------------------------

def test_jtt_from_scratch_tries_each_recipe_and_keeps_the_best_validation_wga(monkeypatch):
    from types import SimpleNamespace

    from artifact.config import build
    from artifact.methods.jtt import JTT, Params

    params = build(Params, {"id": {"lr": 1e-5, "wd": 1.0}, "final": {"lr": 1e-5, "wd": 1.0},
                            "scratch": [{"lr": 1e-2, "wd": 1e-4}, {"lr": 1e-3, "wd": 1e-3}]}, "method.params")
    tried = []

    def fake_run(self, ctx, p, case):
        tried.append((p.id.lr, p.id.wd, p.final.lr, p.final.wd))
        return {"history": [{"val_wga": 10.0}, {"val_wga": 50.0 if p.final.lr == 1e-3 else 40.0}], "best_epoch": 1}

    monkeypatch.setattr(JTT, "_run", fake_run)
    scratch = SimpleNamespace(model_cfg=SimpleNamespace(pretrained=False))
    out = JTT().run(scratch, params, "standard")
    assert tried == [(1e-2, 1e-4, 1e-2, 1e-4), (1e-3, 1e-3, 1e-3, 1e-3)]
    assert out["scratch_recipe"] == {"chosen": {"lr": 1e-3, "wd": 1e-3}, "val_wga": [40.0, 50.0]}
    tried.clear()
    out = JTT().run(SimpleNamespace(model_cfg=SimpleNamespace(pretrained=True)), params, "standard")
    assert tried == [(1e-5, 1.0, 1e-5, 1.0)] and "scratch_recipe" not in out  # pretrained: the preset's recipe


def test_paper_table8_scratch_rows_price_every_recipe():
    from artifact.config import build, load_preset
    from artifact.grid import expand, load_table
    from artifact.methods import METHODS
    from artifact.methods.jtt import Params

    jobs = expand(load_table("table8"), load_preset("paper"))
    for job in jobs:
        params = build(Params, job.cfg["method"]["params"], "method.params")
        n = len(METHODS["jtt"].stages(job.cfg, params, job.cfg["case"]))
        assert n == (2 if job.cfg["model"]["pretrained"] else 2 * len(params.scratch)), job.labels
