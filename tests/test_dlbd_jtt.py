"""DLBD trigger geometry and poison selection; JTT upsampling and case interventions."""

import math

import torch

from artifact.attacks.dlbd import DLBD, Params, stamp, trigger_box
from artifact.config import DatasetCfg
from artifact.data import load_dataset
from artifact.methods.jtt import apply_case, upsample_index


def test_trigger_is_25px_one_pixel_from_the_corner_at_224():
    rows, cols = trigger_box(224, Params())
    assert (rows.start, rows.stop, cols.start, cols.stop) == (198, 223, 198, 223)  # rows 198..222
    x = stamp(torch.zeros(1, 3, 224, 224, dtype=torch.uint8), Params())
    assert x.sum() == 3 * 25 * 25 * 255 and x[0, :, 223, :].sum() == 0 and x[0, :, :, 223].sum() == 0


def test_trigger_scales_with_resolution():
    rows, _ = trigger_box(32, Params())
    assert (rows.start, rows.stop) == (27, 31)  # 4 px, 1 px margin
    x = stamp(torch.zeros(3, 32, 32), Params())
    assert x.max() == 1.0 and x.sum() == 3 * 16


def test_poisons_come_from_the_other_class_hrg_and_are_relabelled():
    data = load_dataset(DatasetCfg(scale=0.25), None)
    poisoned, info = DLBD().poison(data, Params(rate=0.01), seed=0)
    t = poisoned.train
    n = math.floor(0.01 * len(data.train))
    assert info == {"target": 1, "n_poison": n} and int(t.is_poison.sum()) == n
    assert len(t) == len(data.train)  # replaced in place
    assert (t.y[t.is_poison] == 1).all() and (t.a[t.is_poison] == 0).all()
    assert (data.train.g[t.is_poison] == 0).all()  # drawn from landbird-on-land (HRG of class 0)
    assert (t.x(t.is_poison.nonzero().squeeze(1))[..., 27:31, 27:31] == 255).all()
    clean = (~t.is_poison).nonzero().squeeze(1)
    assert torch.equal(t.x(clean), data.train.x(clean))  # the rest untouched
    again, _ = DLBD().poison(data, Params(rate=0.01), seed=0)
    assert torch.equal(again.train.is_poison, t.is_poison)  # seeded


def test_upsampling_repeats_error_points_L_more_times():
    error = torch.tensor([False, True, False, True])
    idx = upsample_index(4, error, upweight=3)
    assert torch.bincount(idx).tolist() == [1, 4, 1, 4]


def test_cases_intervene_on_poisons_only():
    error = torch.tensor([True, False, True, False])
    poison = torch.tensor([True, True, False, False])
    assert apply_case(error, poison, "standard").tolist() == [True, False, True, False]
    assert apply_case(error, poison, "ideal").tolist() == [False, False, True, False]
    assert apply_case(error, poison, "worst").tolist() == [True, True, True, False]
