"""SA invariants: ceil(2 % N) appended poisons, flipped labels, images from the target group only."""

import math

import torch

from artifact.attacks.sa import SA, Params, target_group
from artifact.config import DatasetCfg
from artifact.data import load_dataset


def _data():
    return load_dataset(DatasetCfg(name="synth-waterbirds", scale=0.1), None)


def _source_rows(split, g):
    """uint8 images of split's group g, as a set of byte strings (to check where a poison comes from)."""
    idx = (split.g == g).nonzero().squeeze(1)
    return {bytes(x.numpy().tobytes()) for x in split.x(idx)}


def test_poisons_are_flipped_copies_of_the_target_group():
    data = _data()
    for target in ("hrg", "lrg1"):
        for source in ("train", "val"):
            params = Params(rate=0.02, target=target, source=source)
            poisoned, info = SA().poison(data, params, seed=3)
            n = len(data.train)
            p = math.ceil(0.02 * n)
            assert info["n_poison"] == p and len(poisoned.train) == n + p
            flags = poisoned.train.is_poison
            assert flags[n:].all() and not flags[:n].any()
            g = target_group(data, params)
            assert g == (data.lrg1 if target == "lrg1" else 0)
            assert (poisoned.train.y[n:] == 1 - g // 2).all() and (poisoned.train.a[n:] == g % 2).all()
            origin = _source_rows(data.split(source), g)
            assert all(bytes(x.numpy().tobytes()) in origin for x in poisoned.train.x(torch.arange(n, n + p)))
            assert torch.equal(poisoned.train.y[:n], data.train.y)


def test_sampling_is_with_replacement_and_seeded():
    data = _data()
    params = Params(rate=0.5, target="lrg1", source="train")  # far more poisons than LRG-1 members
    a, _ = SA().poison(data, params, seed=1)
    b, _ = SA().poison(data, params, seed=1)
    n = len(data.train)
    assert torch.equal(a.train.x(torch.arange(n, len(a.train))), b.train.x(torch.arange(n, len(b.train))))


def test_asr_is_the_target_accuracy_drop_against_the_reference():
    data = _data()
    poisoned, info = SA().poison(data, Params(), seed=0)

    class Always0(torch.nn.Module):
        def forward(self, x):
            return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1)

    from artifact.train import Runtime

    out = SA().success(Always0(), poisoned, Params(), info, Runtime(), reference={"group_acc": [90.0, 0, 0, 0]})
    assert out["target_acc"] == 100.0  # target = landbird/land, always predicted landbird
    assert out["asr"] == -10.0
