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

    assert waterbirds.SPEC.acc_weighted is True  # JTT's 93.3 / 97.3 % are train-weighted group averages
    assert celeba.SPEC.acc_weighted is False  # CelebA's train and test proportions agree: plain accuracy


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
    with pytest.raises(UserError, match="less than one poison; raise attack.rate"):
        poison_count(0.001, 500)


def test_dlbd_plants_floor_rate_n_poisons():
    from artifact.attacks.dlbd import DLBD, Params

    data = load_dataset(DatasetCfg(name="synth-waterbirds", scale=0.1), None)
    poisoned, info = DLBD().poison(data, Params(rate=0.01), seed=0)
    assert info["n_poison"] == int(poisoned.train.is_poison.sum()) == math.floor(0.01 * len(data.train))
