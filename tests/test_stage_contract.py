"""The stage contract: for every (method, attack) pair, the stages a smoke job asks the store for are exactly
the ones `stages.job_stages` predicts without running it (what --dry-run prices and the sharing count
counts). Only the key paths a Stage names as `runtime` (the final model's training positions) are left out."""

import pytest

from artifact.attacks import ATTACKS
from artifact.experiments import execute
from artifact.methods import METHODS
from artifact.stages import job_stages, known_part
from artifact.store import Store, canonical

PAIRS = [(m, a) for m in METHODS for a in ATTACKS]


def _keys(stages, runtime: dict) -> set:
    return {(kind, canonical(known_part(key, runtime.get(kind, ())))) for kind, key in stages}


def _own(registry) -> set:
    """The registry's names from the package itself (a test's toy plugin, registered in this process by an
    earlier test through OILWATER_PLUGINS, is not the package's to cover)."""
    return {n for n in registry if type(registry[n]).__module__.startswith("artifact.")}


def test_every_registered_method_and_attack_is_covered():
    assert {m for m, _ in PAIRS} == _own(METHODS) and {a for _, a in PAIRS} == _own(ATTACKS)
    assert len(PAIRS) >= 7 * 4


# The tiny preset's small CNN starts from the synthetic pretraining stage (artifact/pretrain.py): a few
# images and one epoch of it, under the attack that trains a model of its own too (GM's surrogate).
PRETRAINED = {"pretrained": True, "pretrain": {"images": 64, "train": {"epochs": 1, "batch_size": 32}}}


@pytest.mark.slow
@pytest.mark.parametrize(("method", "attack", "model"), [(m, a, {}) for m, a in PAIRS]
                         + [("jtt", "gm", PRETRAINED), ("erm", "dlbd", PRETRAINED)])
def test_the_store_writes_exactly_the_predicted_stage_keys(method, attack, model, tmp_path, monkeypatch, smoke_job):
    cfg = smoke_job(method, attack, model=model)
    asked, stage = [], Store.stage

    def spy(self, kind, key, compute):
        asked.append((kind, key))
        return stage(self, kind, key, compute)

    monkeypatch.setattr(Store, "stage", spy)
    out = execute(cfg, str(tmp_path), {"device": "cpu", "threads": 1})
    assert out["status"] == "done", out
    predicted = job_stages(cfg)
    assert any(s.kind == "pretrain" for s in predicted) == bool(model)
    runtime = {}
    for s in predicted:
        runtime[s.kind] = tuple(sorted({*runtime.get(s.kind, ()), *s.runtime}))
    assert _keys(asked, runtime) == _keys([(s.kind, s.key) for s in predicted], runtime)
