"""Properties over random inputs (hypothesis): EPIC's exact 1-D path equals the dense one, WGA bounds the
group accuracies from below, the checker's verdict is monotone in its tolerance, and a job's hash
changes with every config field and with nothing else. In the fast lane: the `fast` hypothesis profile
(tests/conftest.py) runs a fixed set of 60 examples per property; `--hypothesis-profile=explore` searches
3000 random ones (docs/testing.md).
"""

import copy
import math

import numpy as np
import pandas as pd
from hypothesis import example, given
from hypothesis import strategies as st

from artifact import check, metrics
from artifact.config import load_preset
from artifact.defenses import epic
from artifact.grid import Job, expand, load_table
from artifact.store import content_hash

# --- EPIC: the 1-D path makes the dense path's choices ------------------------------------------------------

# A class's t = (g₀ − g₁)/2 lies in [−1, 1]; confident predictions crowd the ends and saturated softmaxes give
# exact duplicates and values closer together than the similarity's rounding (SIM_DECIMALS), hence values
# from a coarse grid, from a hair's breadth around 0 and 1, and arbitrary floats.
T_VALUES = st.one_of(st.integers(-20, 20).map(lambda i: i / 20),
                     st.floats(-1e-11, 1e-11, allow_subnormal=False), st.floats(1 - 1e-12, 1),
                     st.floats(-1, 1, allow_nan=False, allow_subnormal=False))


@st.composite
def proxies(draw):
    """A class's t values and a budget k; some classes saturated (every t within a hair of 0: wide ties)."""
    values = draw(st.sampled_from([T_VALUES, st.floats(-1e-11, 1e-11, allow_subnormal=False)]))
    t = draw(st.lists(values, min_size=1, max_size=60))
    return t, draw(st.integers(1, len(t)))


@given(proxies())
# Found by this test: medoids at 0 and −1.8e-66 tie at similarity 1, and the point at −1.8e-66 joins the
# earlier medoid (0); the 1-D assignment once looked only at the neighbours on either side of each point.
@example(([0.0, 0.0, 0.0, 0.0, -1.7732352768217766e-66], 5))
@example(([0.0] * 5 + [i * 1e-14 for i in range(1, 36)], 40))  # 36 medoids tied at similarity 1
@example(([0.0, 0.0, 0.0, -0.1, -0.2, -0.25], 3))  # explore found it: the lowest value is the left medoid
def test_1d_facility_location_equals_the_dense_one(case):
    t, k = case
    t = np.asarray(t, dtype=np.float64)
    g = np.stack([t, -t], 1)  # a 2-class gradient proxy: ±(p, −p)
    dense, line = epic.medoids(g, k, "dense"), epic.medoids(g, k, "1d")
    assert line[0].tolist() == dense[0].tolist()  # the same medoids in the same order
    assert line[1].tolist() == dense[1].tolist()  # every point in the same cluster
    assert len(set(dense[0].tolist())) == k


@given(st.lists(st.integers(0, 500), min_size=1, max_size=6).filter(sum), st.data())
def test_class_budgets_split_the_budget_exactly_near_the_class_shares(counts, data):
    budget = data.draw(st.integers(0, sum(counts)), label="budget")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    k = epic.class_budgets(np.array(counts), budget, np.random.default_rng(seed))
    share = np.array(counts) / sum(counts) * budget
    assert k.dtype == np.int64 and k.sum() == budget
    # ceil(share), then the surplus taken one each from random classes (any class, the official rule):
    ceil = np.ceil(share - 1e-9)
    assert np.all(k <= ceil) and np.all(k >= ceil - 1) and np.all(k[np.array(counts) == 0] == 0)


# --- metrics: WGA is the worst group ------------------------------------------------------------------------


@st.composite
def predictions(draw):
    n = draw(st.integers(1, 80))
    ints = st.lists(st.integers(0, 1), min_size=n, max_size=n)
    g = np.asarray(draw(st.lists(st.integers(0, metrics.N_GROUPS - 1), min_size=n, max_size=n)))
    return np.asarray(draw(ints)), np.asarray(draw(ints)), g


@given(predictions())
def test_wga_is_at_most_every_group_accuracy_and_acc(sample):
    pred, y, g = sample
    ga = metrics.group_acc(pred, y, g)
    present = [k for k in range(metrics.N_GROUPS) if (g == k).any()]
    assert all(math.isnan(ga[k]) == (k not in present) for k in range(metrics.N_GROUPS))
    worst = metrics.wga(ga)
    assert worst in [ga[k] for k in present]  # the minimum over the non-empty groups, never NaN
    assert all(worst <= ga[k] for k in present)
    # ACC is the size-weighted mean of the group accuracies, so WGA <= ACC <= the best group's.
    sizes = np.array([(g == k).sum() for k in present])
    acc = metrics.acc(pred, y)
    assert math.isclose(acc, np.dot(sizes, [ga[k] for k in present]) / sizes.sum(), abs_tol=1e-9)
    assert worst <= acc + 1e-9 and acc <= max(ga[k] for k in present) + 1e-9
    # The adjusted ACC (train-proportion weights over the same groups) is such a mean too.
    weights = sizes / sizes.sum()
    full = np.zeros(metrics.N_GROUPS)
    full[present] = weights
    assert worst <= metrics.adjusted_acc(ga, full) + 1e-9


# --- the checker: a looser tolerance never turns a PASS into a FAIL -----------------------------------------

PCT = st.floats(0, 100, allow_nan=False)
SD = st.floats(0, 30, allow_nan=False)


@st.composite
def cells(draw):
    """A table of ours-vs-paper cells, as report.aggregate and expected_results/*.csv lay them out."""
    n = draw(st.integers(1, 6))
    rows = [{"method": f"m{i}", "mean": draw(PCT), "std": draw(SD)} for i in range(n)]
    ours = [{"mean": draw(PCT), "std": draw(st.one_of(SD, st.just(math.nan)))} for _ in range(n)]
    expected = pd.DataFrame([{"method": r["method"], "metric": "wga", "mean": r["mean"], "std": r["std"]}
                             for r in rows])
    agg = pd.DataFrame([{"method": r["method"], "metric": "wga", **o, "n": 3, "n_expected": 3, "na": False}
                        for r, o in zip(rows, ours, strict=True)])
    return agg, expected


@given(cells(), st.floats(0, 4), st.floats(0, 4), st.floats(0, 5), st.floats(0, 5))
def test_check_numbers_is_monotone_in_k_and_floor(table, k1, k2, f1, f2):
    agg, expected = table
    (k_lo, k_hi), (f_lo, f_hi) = sorted((k1, k2)), sorted((f1, f2))
    strict = [v.status for v in check.check_numbers(agg, expected, k_lo, f_lo)]
    loose = [v.status for v in check.check_numbers(agg, expected, k_hi, f_hi)]
    assert set(strict) | set(loose) <= {"PASS", "FAIL"}
    assert all(b == "PASS" for a, b in zip(strict, loose, strict=True) if a == "PASS")
    # ... and the bound is the documented one: PASS exactly when |Δ| <= k·hypot(sd_paper, sd_ours) + floor.
    for e, o, status in zip(expected.itertuples(), agg.itertuples(), loose, strict=True):
        sd = 0.0 if math.isnan(o.std) else o.std
        assert (status == "PASS") == (abs(o.mean - e.mean) <= k_hi * math.hypot(e.std, sd) + f_hi)


# --- job hashes: every field counts, key order does not -----------------------------------------------------

CFG = expand(load_table("table2"), load_preset("smoke"))[0].cfg


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path


LEAVES = list(_leaves(CFG))


def _other(value):
    """A strategy of values of the same kind as `value`, each different from it."""
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, int):
        return st.integers(-10**6, 10**6).filter(lambda v: v != value)
    if isinstance(value, float):
        return st.floats(allow_nan=False).filter(lambda v: v != value)
    if isinstance(value, str):
        return st.text(max_size=8).filter(lambda v: v != value)
    if isinstance(value, list | tuple):
        return st.lists(st.integers(0, 9), max_size=4).filter(lambda v: v != list(value))
    return st.integers()  # None: any value is a change


def _shuffled(tree, rnd):
    if not isinstance(tree, dict):
        return tree
    keys = list(tree)
    rnd.shuffle(keys)
    return {k: _shuffled(tree[k], rnd) for k in keys}


def test_the_config_has_leaves_of_every_kind():
    kinds = {type(v) for v in (_get(CFG, p) for p in LEAVES)}
    assert len(LEAVES) > 20 and {bool, int, float, str} <= kinds


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


@given(path=st.sampled_from(LEAVES), data=st.data())
def test_job_id_changes_with_every_config_field(path, data):
    cfg = copy.deepcopy(CFG)
    node = _get(cfg, path[:-1])
    node[path[-1]] = data.draw(_other(node[path[-1]]), label="new value")
    assert Job({}, cfg).id != Job({}, CFG).id
    assert content_hash(cfg) != content_hash(CFG)


@given(rnd=st.randoms(use_true_random=False), labels=st.dictionaries(st.text(max_size=5), st.integers()))
def test_job_id_ignores_key_order_and_labels(rnd, labels):
    shuffled = _shuffled(CFG, rnd)
    assert Job(labels, shuffled).id == Job({}, CFG).id == content_hash(CFG)
    assert Job(labels, shuffled).share_key == Job({}, CFG).share_key
