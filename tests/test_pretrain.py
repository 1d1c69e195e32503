"""The tiny preset's pretraining stage: rendered as specified, computed once per architecture and config,
shared by every seed, dataset and table, and the start of every pretrained small CNN."""

from __future__ import annotations

import torch

from artifact.config import ModelCfg, PretrainCfg, TrainCfg, load_preset
from artifact.experiments import Context
from artifact.grid import expand, load_table
from artifact.pretrain import SHAPES, render, stage_key, uses_pretraining
from artifact.stages import job_stages, sharing
from artifact.store import Store
from artifact.train import Runtime

SMALL = {"images": 64, "size": 16, "seed": 3, "holdout": 0.25, "train": {"epochs": 1, "lr": 0.05, "batch_size": 32}}


def _cfg(seed: int, dataset: str = "synth-waterbirds", width: int = 4) -> dict:
    return {"dataset": {"name": dataset, "size": 16, "scale": 0.02}, "attack": {"name": "none", "params": {}},
            "method": {"name": "erm", "params": {"final": {"epochs": 1}}}, "case": "standard", "seed": seed,
            "model": {"arch": "smallcnn", "width": width, "pretrained": True, "pretrain": SMALL}}


def test_render_is_label_balanced_seeded_and_backgrounds_independent_of_the_label():
    x, y, kind = render(PretrainCfg(images=800, size=16))
    assert x.dtype == torch.uint8 and x.shape == (800, 3, 16, 16)
    assert y.bincount().tolist() == [100] * len(SHAPES)
    for k in range(4):  # every background kind appears with every class: no shortcut through the background
        assert len(set(y[kind == k].tolist())) == len(SHAPES)
    x2, y2, kind2 = render(PretrainCfg(images=800, size=16))
    assert torch.equal(x, x2) and torch.equal(kind, kind2)
    assert not torch.equal(x, render(PretrainCfg(images=800, size=16, seed=2))[0])


def test_stage_key_ignores_everything_downstream():
    a = ModelCfg(pretrained=True, width=4, pretrain=PretrainCfg(images=64))
    assert stage_key(a) == stage_key(ModelCfg(pretrained=True, width=4, pretrain=PretrainCfg(images=64)))
    assert stage_key(a) != stage_key(ModelCfg(pretrained=True, width=8, pretrain=PretrainCfg(images=64)))
    assert stage_key(a) != stage_key(ModelCfg(pretrained=True, width=4, pretrain=PretrainCfg(
        images=64, train=TrainCfg(epochs=2))))
    assert uses_pretraining(a) and not uses_pretraining(ModelCfg()) and not uses_pretraining(
        ModelCfg(arch="resnet18", pretrained=True))


def test_pretraining_runs_once_and_every_job_starts_from_its_weights(tmp_path):
    store = Store(tmp_path)
    rt = Runtime(threads=1)
    rt.setup()
    ctxs = [Context(_cfg(0), store, rt), Context(_cfg(1), store, rt), Context(_cfg(0, "synth-celeba"), store, rt)]
    models = [c.new_model("final") for c in ctxs]
    assert len(list((tmp_path / "stages" / "pretrain").glob("*.pt"))) == 1  # one stage for 2 seeds x 2 data sets
    bodies = [{k: v for k, v in m.state_dict().items() if not k.startswith("net.fc.")} for m in models]
    for body in bodies[1:]:  # bit-identical pretrained bodies ...
        assert all(torch.equal(body[k], bodies[0][k]) for k in body)
    # ... the pretrained weights, not a fresh init
    scratch = Context({**_cfg(0), "model": {"arch": "smallcnn", "width": 4}}, store, rt).new_model("final")
    assert not torch.equal(scratch.state_dict()["net.body.0.weight"], bodies[0]["net.body.0.weight"])
    # and a fresh head per job (seeded by the job)
    assert not torch.equal(models[0].state_dict()["net.fc.weight"], models[1].state_dict()["net.fc.weight"])
    again = Context(_cfg(0), store, rt).new_model("final")
    assert all(torch.equal(v, models[0].state_dict()[k]) for k, v in again.state_dict().items())


def test_dry_run_counts_the_pretraining_once_per_architecture():
    preset = load_preset("tiny")
    jobs = [*expand(load_table("table2"), preset), *expand(load_table("baseline"), preset)]
    counts = sharing(jobs)
    assert counts["shared"]["pretrain"] == 1 and counts["naive"]["pretrain"] == len(jobs)
    table8 = expand(load_table("table8"), preset)
    pretrained = [j for j in table8 if j.cfg["model"].get("pretrained", True)]
    scratch = [j for j in table8 if not j.cfg["model"].get("pretrained", True)]
    assert pretrained and scratch  # Table 8's from-scratch rows stay from scratch
    assert all(not any(s.kind == "pretrain" for s in job_stages(j.cfg)) for j in scratch)
    assert sharing(table8)["shared"]["pretrain"] == 1  # its width-32 network: a stage of its own
    assert {s.id for j in pretrained for s in job_stages(j.cfg) if s.kind == "pretrain"}.isdisjoint(
        {s.id for j in jobs for s in job_stages(j.cfg) if s.kind == "pretrain"})
