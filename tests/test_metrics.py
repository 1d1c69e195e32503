import math
import warnings

import numpy as np

from artifact import metrics


def test_group_acc_and_wga():
    y = np.array([0, 0, 1, 1, 0, 1])
    g = np.array([0, 0, 2, 2, 1, 3])
    pred = np.array([0, 1, 1, 1, 1, 0])
    ga = metrics.group_acc(pred, y, g)
    assert ga == [50.0, 0.0, 100.0, 0.0]
    assert metrics.wga(ga) == 0.0
    assert metrics.acc(pred, y) == 50.0


def test_wga_ignores_empty_groups():
    ga = metrics.group_acc(np.array([0, 1]), np.array([0, 1]), np.array([0, 3]))
    assert math.isnan(ga[1]) and metrics.wga(ga) == 100.0


def test_backdoor_asr_denominators():
    y = np.array([0, 0, 0, 0, 1])
    clean = np.array([0, 0, 0, 1, 1])  # the 4th is already wrong when clean
    trig = np.array([1, 1, 0, 1, 1])
    asr, asr_all = metrics.asr_backdoor(clean, trig, y, target=1)
    assert asr == 100 * 2 / 3  # among the 3 correct-when-clean non-target samples
    assert asr_all == 100 * 2 / 4  # among all 4 non-target samples


def test_rate_by_role_splits_poisons_from_their_source_group():
    g = np.array([0, 0, 0, 1, 2, 2, 3])
    poison = np.array([1, 0, 0, 0, 0, 0, 0], bool)
    flags = np.array([1, 0, 0, 1, 1, 0, 0], bool)
    r = metrics.rate_by_role(flags, g, poison, lrg1=2, lrg2=1, hrg=(0, 3))
    assert r == {"poisons": 100.0, "lrg1": 50.0, "lrg2": 100.0, "hrg": 0.0}


def test_empty_inputs_give_nan_not_an_error():
    """NaN by an explicit check, not by numpy dividing by zero (whose RuntimeWarning would reach the user)."""
    warnings.simplefilter("error", RuntimeWarning)
    assert math.isnan(metrics.acc(np.array([]), np.array([])))
    assert math.isnan(metrics.min_class_share(np.array([], dtype=np.int64)))
    asr, asr_all = metrics.asr_backdoor(np.array([1]), np.array([1]), np.array([1]), target=1)  # no source sample
    assert math.isnan(asr) and math.isnan(asr_all)
    asr, asr_all = metrics.asr_backdoor(np.array([1]), np.array([1]), np.array([0]), target=1)  # none correct
    assert math.isnan(asr) and asr_all == 0.0  # a flip counts only from a correct clean prediction


def test_min_class_share_counts_a_class_never_predicted():
    assert metrics.min_class_share(np.array([0, 1, 1, 1])) == 25.0
    assert metrics.min_class_share(np.array([1, 1, 1, 1])) == 0.0  # constant: the other class gets 0 %
    assert metrics.min_class_share(np.array([0, 1, 2, 2]), n_classes=3) == 25.0
    assert metrics.min_class_share(np.array([0, 1, 1]), n_classes=3) == 0.0


def test_adjusted_acc_weights_group_accuracies_and_ignores_empty_groups():
    assert metrics.adjusted_acc([100.0, 50.0, 0.0, 80.0], [0.5, 0.25, 0.125, 0.125]) == 72.5
    assert metrics.adjusted_acc([100.0, float("nan"), 0.0, 80.0], [0.5, 0.0, 0.25, 0.25]) == 70.0


def test_group_acc_has_four_groups_by_default_and_nan_for_absent_ones():
    ga = metrics.group_acc(np.array([1, 0]), np.array([1, 1]), np.array([2, 2]))
    assert len(ga) == 4 and ga[2] == 50.0 and all(math.isnan(ga[k]) for k in (0, 1, 3))
    assert metrics.group_acc(np.array([1]), np.array([1]), np.array([4]), n_groups=5)[4] == 100.0


def test_rate_by_role_without_lrg2_and_with_an_empty_role():
    warnings.simplefilter("error", RuntimeWarning)  # an empty role is NaN by check, not by a mean of nothing
    g = np.array([0, 2, 2, 3])
    poison = np.array([0, 0, 0, 0], bool)
    r = metrics.rate_by_role(np.array([1, 1, 0, 0], bool), g, poison, lrg1=2, lrg2=None, hrg=(0, 3))
    assert list(r) == ["poisons", "lrg1", "hrg"] and math.isnan(r["poisons"])
    assert r["lrg1"] == 50.0 and r["hrg"] == 50.0
