"""Metrics as pure functions of predictions and labels (numpy or torch in, floats in % out)."""

from __future__ import annotations

import numpy as np

N_GROUPS = 4


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def acc(pred, y) -> float:
    pred, y = _np(pred), _np(y)
    return float(100.0 * (pred == y).mean()) if len(y) else float("nan")


def group_acc(pred, y, g, n_groups: int = N_GROUPS) -> list[float]:
    """Accuracy per true group (NaN for an empty group)."""
    pred, y, g = _np(pred), _np(y), _np(g)
    return [acc(pred[g == k], y[g == k]) if (g == k).any() else float("nan") for k in range(n_groups)]


def wga(group_accs) -> float:
    """Worst-group accuracy: the lowest accuracy over the non-empty true groups."""
    return float(np.nanmin(group_accs))


def worst_is_lrg(group_accs, lrg) -> float:
    """100 if the worst group is a low-represented one (`lrg`: LRG-1, LRG-2), else 0: averaged over seeds,
    the share of models whose WGA is a minority group's, as ERM's is in the paper's regime."""
    return 100.0 * (int(np.nanargmin(group_accs)) in set(lrg))


def min_class_share(pred, n_classes: int = 2) -> float:
    """% of predictions going to the least-predicted class: 0 for a constant predictor."""
    pred = _np(pred)
    return float(100.0 * np.bincount(pred, minlength=n_classes).min() / len(pred)) if len(pred) else float("nan")


def adjusted_acc(group_accs, weights) -> float:
    """Average of group accuracies weighted by train proportions (the Waterbirds convention)."""
    return float(np.dot(np.nan_to_num(group_accs), weights))


def reported_acc(pred, y, group_accs, weights, weighted: bool) -> float:
    """ACC as the paper reports it: the train-weighted group average where the dataset says so, else plain."""
    return adjusted_acc(group_accs, weights) if weighted else acc(pred, y)


def asr_backdoor(pred_clean, pred_trigger, y, target: int) -> tuple[float, float]:
    """DLBD attack success on test samples whose true class is not the target.

    Returns (asr, asr_all): asr counts, among the samples classified correctly when clean, those sent to
    the target by the trigger (the paper's wording and our headline number); asr_all uses all
    non-target samples as the denominator (docs/deviations.md).
    """
    pred_clean, pred_trigger, y = _np(pred_clean), _np(pred_trigger), _np(y)
    src = y != target
    flipped = src & (pred_clean == y) & (pred_trigger == target)
    correct = src & (pred_clean == y)
    asr = 100.0 * flipped.sum() / correct.sum() if correct.any() else float("nan")
    asr_all = 100.0 * flipped.sum() / src.sum() if src.any() else float("nan")
    return float(asr), float(asr_all)


def rate_by_role(flags, g, is_poison, lrg1: int, lrg2: int | None, hrg) -> dict[str, float]:
    """Share (%) of each ground-truth role flagged (IDNF for amplified sets, ELMF for removed ones).

    Poisons form their own role; the clean samples are split into LRG-1, LRG-2 and HRG by true group.
    """
    flags, g, is_poison = _np(flags).astype(bool), _np(g), _np(is_poison).astype(bool)
    clean = ~is_poison
    roles = {"poisons": is_poison, "lrg1": clean & (g == lrg1), "hrg": clean & np.isin(g, list(hrg))}
    if lrg2 is not None:
        roles["lrg2"] = clean & (g == lrg2)
    out = {name: (100.0 * flags[m].mean() if m.any() else float("nan")) for name, m in roles.items()}
    order = ["poisons", "lrg1", "lrg2", "hrg"]
    return {k: out[k] for k in order if k in out}
