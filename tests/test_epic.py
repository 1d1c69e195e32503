"""EPIC: facility location (optimum on a hand example; 1-D path = dense path in test_properties.py), budgets,
permanent removal, ELMF bookkeeping, preset consistency; end-to-end smoke runs of Tables 3/10/12 and Figure 1 (slow)."""

import itertools
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from artifact import metrics
from artifact.config import load_preset, read_yaml
from artifact.defenses import epic
from artifact.methods import epic as epic_method

ROOT = Path(__file__).parent.parent


def _objective(sim, subset):
    return sim[:, list(subset)].max(1).sum()


def _line(t):
    t = np.asarray(t, dtype=np.float64)
    return np.stack([t, -t], 1)  # a 2-class gradient proxy: ±(p, −p)


@pytest.mark.parametrize("path", ["dense", "1d"])
def test_facility_location_finds_the_known_optimum(path):
    # Two points at 0 and two at 1: two medoids, one per location, cover everyone with similarity 1.
    # Every tie goes to the higher index, as submodlib's greedy breaks them (tests/test_epic_official.py).
    g = _line([0.0, 0.0, 1.0, 1.0])
    order, cluster = epic.medoids(g, 2, path)
    assert order.tolist() == [3, 1] and cluster.tolist() == [1, 1, 0, 0]
    assert _objective(epic.similarity(g), order) == pytest.approx(4.0)


@pytest.mark.parametrize("path", ["dense", "1d"])
def test_greedy_is_optimal_for_one_medoid_and_within_the_bound_otherwise(path):
    rng = np.random.default_rng(1)
    for _ in range(10):
        g = _line(rng.random(9))
        sim = epic.similarity(g)
        for k in (1, 2, 3):
            best = max(_objective(sim, s) for s in itertools.combinations(range(9), k))
            got = _objective(sim, epic.medoids(g, k, path)[0])
            assert got == pytest.approx(best) if k == 1 else got >= (1 - 1 / math.e) * best


def test_gradient_proxy_is_softmax_minus_onehot_without_bias():
    h = np.array([[1.0, 0.0], [0.0, 2.0]])
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    g = epic.gradient_proxy(h, w, np.array([0, 1]))
    p0 = 1 / (1 + math.exp(-1))
    assert g[0] == pytest.approx([p0 - 1, 1 - p0])
    assert g.sum(1) == pytest.approx([0, 0])


def test_auto_path_is_1d_for_two_classes_and_dense_otherwise(monkeypatch):
    rng = np.random.default_rng(0)
    g3 = epic.gradient_proxy(rng.normal(size=(12, 3)), np.eye(3), rng.integers(0, 3, 12))
    order, cluster = epic.medoids(g3, 3, "auto")
    assert order.tolist() == epic.medoids(g3, 3, "dense")[0].tolist() and cluster.max() == 2
    with pytest.raises(ValueError, match=r"^the 1-D path needs a 2-class gradient proxy$"):
        epic.medoids(g3, 3, "1d")
    with pytest.raises(ValueError, match=r"^path must be one of auto, dense, 1d$"):
        epic.medoids(g3, 3, "1D")

    def no_dense(*a):
        raise AssertionError("the dense kernel was built")

    g2 = _line([0.0, 0.1, 0.9])
    dense = epic.medoids(g2, 2, "dense")[0].tolist()
    monkeypatch.setattr(epic, "similarity", no_dense)  # 2 classes: never the n x n kernel (CelebA: 77 GB)
    assert epic.medoids(g2, 2, "auto")[0].tolist() == dense == [1, 2]  # ... while making the dense path's choice
    assert epic.medoids(g2, 2)[0].tolist() == dense  # auto is the default, here and in isolated
    y = np.array([0, 0, 1])
    assert epic.isolated(g2, y, 2 / 3, 1.0, np.random.default_rng(0)).tolist() == [False, False, True]
    with pytest.raises(AssertionError, match="the dense kernel was built"):  # ... and an asked path is taken
        epic.isolated(g2, y, 2 / 3, 1.0, np.random.default_rng(0), path="dense")
    with pytest.raises(ValueError, match=r"^cluster_index must be one of \('official', 'fixed'\)$"):
        epic.isolated(g2, y, 2 / 3, 1.0, np.random.default_rng(0), cluster_index="own")


def test_gradient_proxy_is_finite_for_saturated_logits_of_any_scale():
    # Rows of very different scales: the softmax must be shifted row by row, by each row's own maximum.
    h = np.array([[1000.0, 0.0], [0.0, 0.0], [-1000.0, 0.0]])
    g = epic.gradient_proxy(h, np.eye(2), np.array([0, 1, 1]))
    assert np.isfinite(g).all()
    assert g.tolist() == [[0.0, 0.0], [0.5, -0.5], [0.0, 0.0]]


def test_class_budgets_split_b_by_class_size():
    rng = np.random.default_rng(0)
    k = epic.class_budgets(np.array([3682, 1113]), 959, rng)
    assert k.sum() == 959 and set(k.tolist()) <= {737, 736, 223, 222}


def test_isolated_drops_the_singleton_medoids_of_each_class():
    # Class 0: a clump and a far outlier; class 1: a clump. 2 medoids per class -> the outlier is alone.
    t = np.array([0.0, 0.01, 0.02, 0.03, 0.9, 0.5, 0.51, 0.52, 0.53])
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    g = np.where(y[:, None] == 0, _line(-t), _line(t))
    drop = epic.isolated(g, y, subset_size=4 / 9, threshold=1.0, rng=np.random.default_rng(0))
    assert drop[4] and drop[:4].sum() == 0
    assert drop[5:].sum() <= 1  # class 1's second medoid may sit alone inside its clump


@pytest.mark.parametrize("subset, seed, budgets, dropped", [
    (2 / 6, 0, [1, 1], [5]),  # one medoid for the clump and its outlier; class 1's lone point is its own cluster
    (2 / 6, 3, [2, 0], [4]),  # two medoids: the outlier alone; class 1 gets no medoid and loses nothing
    (1 / 6, 0, [0, 1], [5]),  # class 0 gets none: skipped, and class 1 is still selected
])
def test_isolated_follows_each_class_budget(subset, seed, budgets, dropped):
    t = np.array([0.0, 0.01, 0.02, 0.03, 0.9, 0.5])
    y = np.array([0, 0, 0, 0, 0, 1])
    g = np.where(y[:, None] == 0, _line(-t), _line(t))
    assert epic.class_budgets(np.bincount(y), int(subset * 6), np.random.default_rng(seed)).tolist() == budgets
    drop = epic.isolated(g, y, subset_size=subset, threshold=1.0, rng=np.random.default_rng(seed))
    assert drop.dtype == bool and np.flatnonzero(drop).tolist() == dropped


def test_no_medoid_drops_nothing():
    t = np.array([0.0, 0.5, 0.9])
    drop = epic.isolated(_line(t), np.array([0, 0, 1]), subset_size=0.1, threshold=1.0, rng=np.random.default_rng(0))
    assert drop.tolist() == [False, False, False]  # a budget of int(0.1 * 3) = 0 medoids


@pytest.mark.parametrize("t1, thresh, dropped", [
    ([0.2, 0.9], 1.0, [4, 5]),  # class 1 (k = 2) at offset 1·2 reads class 0's third size for its point 5
    ([0.2, 0.9], 0.5, []),
    ([0.2, 0.3, 0.9], 0.5, []),  # k = 3: the empty medoid is the last of its class's size vector
])
def test_a_medoid_nobody_joins_is_a_cluster_of_one_wherever_it_is_read(t1, thresh, dropped):
    """Class 0 has 4 points on 2 values and 3 medoids: the third is a duplicate whose points all join the
    earlier medoid of its value, so its cluster is empty; EPIC counts it as size 1, also where the official
    lookup reads it for another class."""
    t = np.array([0.0, 0.0, 0.5, 0.5, *t1])
    y = np.array([0, 0, 0, 0] + [1] * len(t1))
    g = np.where(y[:, None] == 0, _line(-t), _line(t))
    order, cluster = epic.medoids(g[:4], 3)
    assert np.bincount(cluster, minlength=3).tolist() == [2, 2, 0]
    drop = epic.isolated(g, y, subset_size=(len(t) - 1) / len(t), threshold=thresh, rng=np.random.default_rng(0))
    assert np.flatnonzero(drop).tolist() == dropped


def test_selection_schedule_follows_the_official_rule():
    assert epic.selection_epochs(40, 1, 1, 10) == list(range(1, 10))
    assert epic.selection_epochs(40, 10, 1, 200) == [10, 20, 30]
    assert epic.selection_epochs(8, 1, 1, 8) == list(range(1, 8))


class _Train:
    """The fields of a training split that EPIC's hook reads: 6 HRG (g0), 2 LRG-1 (g2), 2 LRG-2 (g1), 2 HRG (g3)."""

    g = torch.tensor([0] * 6 + [2, 2] + [1, 1] + [3, 3])
    y = g // 2
    is_poison = torch.zeros(12, dtype=torch.bool)

    def __len__(self):
        return 12


def _stub_ctx():
    data = SimpleNamespace(train=_Train(), lrg1=2, lrg2=1, hrg=(0, 3))
    return SimpleNamespace(data=data, rt=None, seed=lambda *tags: 0)


@pytest.mark.parametrize("case", ["standard", "ideal", "worst"])
def test_removals_are_permanent_and_cases_intervene(monkeypatch, case):
    ctx = _stub_ctx()
    masks = iter([np.eye(12, dtype=bool)[[0, 6]].any(0), np.eye(12, dtype=bool)[[1]].any(0), np.zeros(12, bool)])
    monkeypatch.setattr(epic_method.epic, "isolated", lambda *a, **k: next(masks))
    monkeypatch.setattr(epic_method.epic, "gradient_proxy", lambda *a: None)
    monkeypatch.setattr(epic_method, "predict", lambda *a, **k: torch.zeros(12, 2))
    model = SimpleNamespace(head=SimpleNamespace(weight=torch.zeros(2, 2)))
    params = epic_method.Params(final=epic_method.TrainCfg(epochs=4), stop_after=4)
    pruner = epic_method.Pruner(ctx, params, case)
    assert pruner(0, model) is None  # not a selection epoch
    kept = [set(pruner(e, model).tolist()) for e in (1, 2, 3)]
    assert kept[0] >= kept[1] >= kept[2]  # nothing comes back
    removed_at = pruner.summary()["removed_at"]
    minority = {6, 7, 8, 9}  # clean LRG-1 (g 2) and LRG-2 (g 1)
    if case == "ideal":
        assert not minority & set((removed_at >= 0).nonzero().squeeze(1).tolist())
    elif case == "worst":
        assert all(removed_at[i] == 1 for i in minority)
    assert removed_at[0] == 1 and removed_at[1] == 2 and kept[2] == set((removed_at < 0).nonzero().squeeze(1).tolist())


def test_elmf_curve_is_cumulative_and_counts_add_up():
    g = torch.tensor([0] * 10 + [2] * 4 + [1] * 6 + [3] * 10)
    is_poison = torch.zeros(30, dtype=torch.bool)
    is_poison[:2] = True
    removed_at = torch.full((30,), -1)
    removed_at[[0, 10, 11, 14]] = 1
    removed_at[[1, 12, 20]] = 3
    ctx = SimpleNamespace(rates=lambda f: metrics.rate_by_role(f, g, is_poison, 2, 1, (0, 3)))
    curve = epic_method.elmf_curve(ctx, removed_at, [1, 2, 3])
    assert [c["iteration"] for c in curve] == [1, 2, 3]
    assert curve[0]["poisons"] == 50 and curve[2]["poisons"] == 100 and curve[1] == {**curve[0], "iteration": 2,
                                                                                        "epoch": 2}
    sizes = {"poisons": 2, "lrg1": 4, "lrg2": 6, "hrg": 18}
    for c, e in zip(curve, [1, 2, 3], strict=True):
        total = sum(round(c[r] * sizes[r] / 100) for r in sizes)
        assert total == int(((removed_at >= 0) & (removed_at <= e)).sum())


@pytest.mark.parametrize("preset", ["paper", "tiny", "smoke", "preflight"])
def test_combined_methods_repeat_the_jtt_and_epic_sections(preset):
    methods = read_yaml(ROOT / "configs" / "presets" / f"{preset}.yaml")["methods"]
    jtt = {k: v for k, v in methods["jtt"].items() if k != "by_dataset"}
    epic_section = {k: v for k, v in methods["epic"].items() if k != "by_dataset"}
    assert methods["epic_jtt"]["jtt"] == jtt and methods["strip"]["jtt"] == jtt
    assert methods["epic_jtt"]["epic"] == epic_section
    load_preset(preset)


def _smoke(results: Path, target: str, *only):
    cmd = [sys.executable, "-m", "artifact", target, "--preset", "smoke", "--results", str(results),
           *[a for kv in only for a in ("--only", kv)]]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.slow
def test_smoke_epic_targets(tmp_path):
    """Table 3, Figure 1 and Table 10 on one setting, sharing their EPIC runs; Table 12 reuses them."""
    out = _smoke(tmp_path, "table3", "attack=dlbd", "dataset=waterbirds")
    assert "-> SANE" in out and "| WATERBIRDS" in out
    out = _smoke(tmp_path, "figure1", "attack=dlbd", "dataset=waterbirds")
    pngs = list((tmp_path / "tables" / "smoke").glob("figure1.only.*.png"))  # a filtered run names its own files
    assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000
    _smoke(tmp_path, "table10", "attack.rate=0.001")
    out = _smoke(tmp_path, "table12")
    assert "STANDARD" in out and "IDEAL" in out
    # The cluster-lookup ablation: its official rows are Table 3's jobs (shared), the fixed ones run anew.
    out = _smoke(tmp_path, "ablation-epic", "attack=dlbd", "dataset=waterbirds")
    assert "| official" in out and "| fixed" in out and "-> SANE" in out


def test_figure1_draws_one_panel_per_setting_with_seed_bands(tmp_path):
    from artifact import figures

    curve = [{"iteration": i, "epoch": i, "poisons": 20.0 * i, "lrg1": 18.0 * i, "hrg": 1.0 * i} for i in (1, 2, 3)]
    jobs = [SimpleNamespace(id=f"{a}{s}", labels={"dataset": "waterbirds", "attack": a, "seed": s})
            for a in ("dlbd", "sa") for s in range(3)]
    store = SimpleNamespace(load_result=lambda jid: None if jid == "sa2" else {"metrics": {"elmf_curve": curve}})
    data = figures.curves(jobs, store)
    assert data[("waterbirds", "dlbd")]["poisons"].shape == (3, 3) and data[("waterbirds", "sa")]["lrg1"].shape == (2, 3)
    table = SimpleNamespace(name="figure1", title="Figure 1")
    path = figures.render(table, jobs, store, tmp_path)
    assert path == tmp_path / "figure1.png" and path.stat().st_size > 10_000
