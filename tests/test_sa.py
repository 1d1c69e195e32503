"""SA invariants: floor(2 % N) poisons with flipped labels, from the target group only; relabelled in place
(mode modify, the default) or appended beside their twins (mode append)."""

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


def test_default_mode_relabels_training_samples_of_the_target_group_in_place():
    data = _data()
    params = Params(rate=0.02, target="hrg")  # LRG-1 has fewer members than 2 % of N: see below
    assert params.mode == "modify"
    poisoned, info = SA().poison(data, params, seed=3)
    n, p, g = len(data.train), math.floor(0.02 * len(data.train)), target_group(data, params)
    assert info["n_poison"] == p and len(poisoned.train) == n  # no twin left beside a poison
    flags = poisoned.train.is_poison
    assert int(flags.sum()) == p
    assert (data.train.g[flags] == g).all()  # they were clean g* samples ...
    assert (poisoned.train.y[flags] == 1 - g // 2).all()  # ... now with the flipped label
    assert torch.equal(poisoned.train.x(flags.nonzero().squeeze(1)), data.train.x(flags.nonzero().squeeze(1)))
    assert torch.equal(poisoned.train.y[~flags], data.train.y[~flags])


def test_modify_needs_training_samples():
    import pytest

    from artifact.config import build
    from artifact.errors import UserError

    with pytest.raises(UserError, match="needs source 'train'"):
        build(Params, {"source": "val"}, "attack.params")
    with pytest.raises(UserError, match="has only .* training samples to relabel"):
        SA().poison(_data(), Params(rate=0.02, target="lrg1"), seed=0)


def test_append_mode_adds_flipped_copies_of_the_target_group():
    data = _data()
    for target in ("hrg", "lrg1"):
        for source in ("train", "val"):
            params = Params(rate=0.02, target=target, source=source, mode="append")
            poisoned, info = SA().poison(data, params, seed=3)
            n = len(data.train)
            p = math.floor(0.02 * n)
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
    params = Params(rate=0.5, target="lrg1", source="train", mode="append")  # more poisons than LRG-1 members
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
