"""EPIC's selection against the official solver's own library (submodlib, dense facility location, LazyGreedy).

The reference below is the official procedure written from its description: per class, submodlib picks k_c
medoids on the dense Euclidean kernel, every point joins its most similar medoid, sizes of 0 become 1,
and a point is kept when its cluster's size exceeds the threshold — looked up with the official offset
(class-local id + c·k_c into the concatenated size vectors) or with each class's own sizes (`fixed`).
"""

import numpy as np
import pytest

from artifact.defenses import epic

submodlib = pytest.importorskip("submodlib.functions.facilityLocation", reason="submodlib-py is a test dependency")


def _official(g, y, budgets, threshold, cluster_index):
    sizes_all, ids, orders, clusters = [], np.full(len(y), -1), {}, {}
    for c in range(g.shape[1]):
        members = np.flatnonzero(y == c)
        fl = submodlib.FacilityLocationFunction(n=len(members), data=g[members], metric="euclidean", mode="dense")
        picked = fl.maximize(budget=int(budgets[c]), optimizer="LazyGreedy", stopIfZeroGain=False,
                             stopIfNegativeGain=False, verbose=False)
        order = np.array([i for i, _ in picked], dtype=np.int64)
        cluster = np.argmax(fl.sijs[:, order], axis=1)
        sizes = np.bincount(cluster, minlength=len(order)).astype(float)
        sizes[sizes == 0] = 1
        orders[c], clusters[c] = order, cluster
        sizes_all.append(sizes)
        ids[members] = cluster + (c * int(budgets[c]) if cluster_index == "official" else sum(budgets[:c]))
    keep_positions = np.flatnonzero(np.concatenate(sizes_all) > threshold)
    return orders, clusters, ~np.isin(ids, keep_positions)


def _proxies(sizes, n_classes, seed):
    """Gradient proxies softmax(z) - onehot(y) of random logits, classes of unequal size."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    z = rng.normal(0, 2.0, (len(y), n_classes))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p, y


CASES = [((70, 23), 2, 0), ((70, 23), 2, 6), ((120, 30), 2, 6), ((200, 40), 2, 9), ((41, 90), 2, 2), ((50, 12, 30), 3, 3)]


@pytest.mark.parametrize("sizes, n_classes, seed", CASES)
@pytest.mark.parametrize("cluster_index", ["official", "fixed"])
def test_selection_equals_the_official_procedure(sizes, n_classes, seed, cluster_index):
    g, y = _proxies(sizes, n_classes, seed)
    budgets = epic.class_budgets(np.bincount(y), int(0.2 * len(y)), np.random.default_rng(seed))
    assert len(set(budgets.tolist())) > 1  # unequal budgets: the two lookups differ
    orders, clusters, want = _official(g, y, budgets, 1.0, cluster_index)
    paths = ["dense", "1d"] if n_classes == 2 else ["dense"]
    for path in paths:
        for c in range(n_classes):
            order, cluster = epic.medoids(g[y == c], int(budgets[c]), path)
            assert order.tolist() == orders[c].tolist(), (path, c)
            assert cluster.tolist() == clusters[c].tolist(), (path, c)
        got = epic.isolated(g, y, 0.2, 1.0, np.random.default_rng(seed), path, cluster_index)
        assert got.tolist() == want.tolist(), path


def test_the_two_lookups_disagree_on_unequal_classes():
    """The official offset reads the wrong class's sizes: on these proxies it drops other points."""
    g, y = _proxies((120, 30), 2, 6)
    a = epic.isolated(g, y, 0.2, 1.0, np.random.default_rng(0), "dense", "official")
    b = epic.isolated(g, y, 0.2, 1.0, np.random.default_rng(0), "dense", "fixed")
    assert (a[y == 0] == b[y == 0]).all()  # class 0's offset is 0 in both
    assert (a[y == 1] != b[y == 1]).sum() == 5  # 6 dropped by the official lookup, 1 by each class's own


def test_kernel_is_submodlibs():
    g, _ = _proxies((30,), 2, 5)
    fl = submodlib.FacilityLocationFunction(n=len(g), data=g, metric="euclidean", mode="dense")
    assert np.allclose(epic.similarity(g), fl.sijs, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_exact_ties_give_selections_of_the_same_value(seed):
    """Saturated softmax outputs repeat, and symmetric candidates tie in exact arithmetic; submodlib's float32
    kernel then picks by rounding noise, the paths here by index: a different but equally good selection."""
    rng = np.random.default_rng(seed)
    t = np.round(rng.beta(0.3, 0.3, 40), 1)
    g = np.stack([t, -t], 1)
    fl = submodlib.FacilityLocationFunction(n=len(g), data=g, metric="euclidean", mode="dense")
    lazy = [i for i, _ in fl.maximize(budget=8, optimizer="LazyGreedy", stopIfZeroGain=False,
                                      stopIfNegativeGain=False, verbose=False)]
    sim = epic.similarity(g)

    def value(order):
        return float(sim[:, order].max(1).sum())

    for path in ("dense", "1d"):
        assert value(epic.medoids(g, 8, path)[0]) == pytest.approx(value(lazy), abs=1e-6), path
