import math

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
