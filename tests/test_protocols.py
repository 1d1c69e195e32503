"""Every registered plugin meets its protocol, and each dataset's DatasetSpec is what its loader builds."""

import pytest

from artifact.attacks import ATTACKS
from artifact.config import DatasetCfg
from artifact.cost import split_sizes
from artifact.data import DATASETS
from artifact.methods import METHODS
from artifact.protocols import conformance_problem


def test_every_registered_method_and_attack_meets_its_protocol():
    for kind, registry in (("method", METHODS), ("attack", ATTACKS), ("dataset", DATASETS)):
        for name in registry:
            assert conformance_problem(kind, name, registry[name]) is None
    assert conformance_problem("method", "x", object()).startswith("method 'x' lacks Params, cases, prepare, run, stages")


@pytest.mark.parametrize("name", ["synth-waterbirds", "synth-celeba"])
def test_the_dataset_spec_is_what_the_loader_builds(name):
    cfg = DatasetCfg(name=name, scale=0.05)
    data, spec = DATASETS[name](cfg, None), DATASETS.spec(name)
    assert (data.lrg1, data.lrg2, tuple(data.hrg), data.acc_weighted) == (spec.lrg1, spec.lrg2, spec.hrg,
                                                                         spec.acc_weighted)
    counts = spec.counts(cfg.scale)
    for split in ("train", "val", "test"):
        assert tuple(data.split(split).group_counts()) == counts[split]
    assert split_sizes({"name": name, "scale": 0.05})["train"] == len(data.train)


def test_every_dataset_is_registered_with_its_spec():
    for name in DATASETS:
        spec = DATASETS.spec(name)
        assert spec is not None and spec.lrg1 in spec.minority and set(spec.minority).isdisjoint(spec.hrg)
