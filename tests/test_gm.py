"""GM (gradient matching) invariants: crafting, augmentation, restarts and the ASR (docs/deviations.md, GM)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from artifact.attacks import gm
from artifact.config import DatasetCfg, load_preset
from artifact.data import load_dataset
from artifact.errors import UserError
from artifact.experiments import Context, _clean_data
from artifact.grid import expand, load_table
from artifact.models import Normalized
from artifact.store import Store
from artifact.train import Runtime

STD = torch.tensor([0.25, 0.25, 0.25]).view(1, -1, 1, 1)


def _tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2)).eval()


def _images(n=6, size=8, seed=0):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    x[0, :, 0], x[-1, :, -2:] = 0.0, 1.0  # pixels on the box edges: the [0, 1] projection must act
    return x


def test_milestones_match_reference():
    assert gm.milestones(250) == [93, 156, 218]
    assert gm.milestones(16) == [5, 10, 14]


def test_every_step_stays_in_eps_ball_and_image_box():
    x, model = _images(), _tiny_cnn()
    params = gm.Params(eps=16, restarts=1, iterations=6, tau=0.5)  # large lr: the bounds must bind
    eps, seen = 16 / 255, []

    def check(delta):
        seen.append(delta.abs().max().item())
        assert delta.abs().max() <= eps + 1e-7
        assert (x + delta).min() >= -1e-7 and (x + delta).max() <= 1 + 1e-7

    tg = [g.detach() for g in gm.param_grad(model, _images(3, seed=1), torch.zeros(3, dtype=torch.long))]
    delta, _, _ = gm.craft_restart(model, x, torch.ones(len(x), dtype=torch.long), tg, params, STD,
                                   torch.Generator().manual_seed(0), on_step=check)
    check(delta)
    assert len(seen) == 7 and max(seen) > 0.9 * eps  # the ball was reached, not trivially satisfied
    q = gm.quantise(x, delta).int()
    assert (q - torch.round(x * 255).int()).abs().max() <= 16  # uint8 storage keeps the bound


def test_quantised_poisons_keep_the_bound_on_uint8_images():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    xf = x.float() / 255
    delta = gm.project(torch.full_like(xf, 1.0), xf, 16 / 255) * torch.sign(torch.randn_like(xf))
    delta = gm.project(delta, xf, 16 / 255)
    q = gm.quantise(xf, delta)
    assert (q.int() - x.int()).abs().max() <= 16


def test_matching_loss_at_zero_perturbation_equals_hand_computed_cosine():
    """A linear model: the CE gradient is (softmax - onehot) x^T averaged, computed here in numpy."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    x_p, y_p = torch.rand(4, 3, 2, 2), torch.tensor([1, 1, 1, 1])
    x_t, y_t = torch.rand(3, 3, 2, 2), torch.tensor([1, 1, 1])
    w, b = (model[1].weight.detach().double().numpy(), model[1].bias.detach().double().numpy())

    def grad(x, y):
        xs = x.reshape(len(x), -1).double().numpy()
        z = xs @ w.T + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        r = p - np.eye(2)[y.numpy()]
        return np.concatenate([(r.T @ xs / len(xs)).ravel(), r.mean(0)])

    gp, gt = grad(x_p, y_p), grad(x_t, y_t)
    expected = 1 - gp @ gt / (np.linalg.norm(gp) * np.linalg.norm(gt))
    tg = [g.detach() for g in gm.param_grad(model, x_t, y_t)]
    tn = torch.sqrt(sum(t.pow(2).sum() for t in tg))
    got = gm.matching_loss(gm.param_grad(model, x_p + torch.zeros_like(x_p), y_p), tg, tn).item()
    assert math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-6)
    assert 0 <= got <= 2


def test_restart_with_lowest_final_loss_is_returned(monkeypatch):
    losses = iter([0.7, 0.2, 0.5])

    def fake(model, x, y, tg, params, std, gen, on_step=None):
        final = next(losses)
        return torch.full_like(x, final), final, [1.0, final]

    monkeypatch.setattr(gm, "craft_restart", fake)
    x = _images(2)
    out = gm.craft(_tiny_cnn(), x, torch.ones(2, dtype=torch.long), _images(1), torch.ones(1, dtype=torch.long),
                   gm.Params(restarts=3), STD, torch.Generator())
    assert out["chosen"] == 1 and out["final_losses"] == [0.7, 0.2, 0.5]
    assert torch.equal(out["delta"], torch.full_like(x, 0.2))


def test_real_restarts_choose_argmin_and_loss_decreases():
    torch.manual_seed(0)  # a linear model on centred pixels: the cosine starts well below 1 and can move
    model = Normalized(nn.Sequential(nn.Flatten(), nn.Linear(192, 2)), (0.5,) * 3, (0.25,) * 3).eval()
    out = gm.craft(model, _images(8), torch.ones(8, dtype=torch.long), _images(3, seed=2),
                   torch.ones(3, dtype=torch.long), gm.Params(restarts=2, iterations=16, augment=False), STD,
                   torch.Generator().manual_seed(1))
    assert out["chosen"] == int(np.argmin(out["final_losses"]))
    for curve in out["curves"]:
        assert curve[-1] < curve[0] - 0.1  # the passenger loss goes down over the iterations


def test_augmentation_is_a_shift_or_flip_and_differentiable():
    x = torch.rand(16, 3, 8, 8, requires_grad=True)
    out = gm.augment(x, 0.0, torch.Generator().manual_seed(0))  # no shift: identity or an exact flip
    for a, b in zip(out, x, strict=True):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(-1), atol=1e-5)
    gm.augment(x, 1.0, torch.Generator()).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def smoke_data():
    return load_dataset(DatasetCfg(scale=0.25), None)


def test_base_and_target_selection(smoke_data):
    d = smoke_data
    gen = torch.Generator().manual_seed(0)
    bases, requested = gm.select_bases(d.train, d.lrg1, 0.01, gen)
    assert requested == math.floor(0.01 * len(d.train)) == len(bases)
    assert len(set(bases.tolist())) == len(bases) and (d.train.g[bases] == d.lrg1).all()
    assert (d.train.y[bases] == d.lrg1_class).all()
    capped, requested = gm.select_bases(d.train, d.lrg1, 0.5, gen)
    assert len(capped) == int((d.train.g == d.lrg1).sum()) < requested  # capped at the group size
    targets = gm.select_targets(d.test, 1 - d.lrg1_class, 7, torch.Generator().manual_seed(5))
    again = gm.select_targets(d.test, 1 - d.lrg1_class, 7, torch.Generator().manual_seed(5))
    assert torch.equal(targets, again) and len(set(targets.tolist())) == 7
    assert (d.test.y[targets] == 1 - d.lrg1_class).all()
    with pytest.raises(UserError, match="n_targets"):
        gm.select_targets(d.test, 0, 10**6, gen)


def test_crafted_stage_is_computed_once_and_shared(tmp_path, monkeypatch):
    """Cases share the crafted poisons; n_targets settings share the surrogate; targets leave the test set."""
    crafts, trains = [], []
    real_craft, real_train = gm.craft, gm.train
    monkeypatch.setattr(gm, "craft", lambda *a, **k: crafts.append(1) or real_craft(*a, **k))
    monkeypatch.setattr(gm, "train", lambda *a, **k: trains.append(1) or real_train(*a, **k))
    jobs = expand(load_table("table7"), load_preset("smoke"))
    pick = {}
    for j in jobs:  # the smoke configs, smaller still: 10 % of the synthetic data, 2 crafting iterations
        j.cfg["dataset"]["scale"], j.cfg["attack"]["params"]["iterations"] = 0.1, 2
        pick[j.labels["attack.n_targets"], j.labels["case"]] = j.cfg
    store, rt = Store(tmp_path), Runtime()
    rt.setup()
    ctxs = [Context(pick[k], store, rt) for k in [(5, "worst"), (5, "standard"), (100, "ideal")]]
    assert len(crafts) == 2 and len(trains) == 1
    clean = _clean_data(ctxs[0].dataset_cfg, None)
    for ctx, n in zip(ctxs, (5, 5, 100), strict=True):
        info, data = ctx.attack_info, ctx.data
        assert info["n_targets"] == n and len(data.test) == len(clean.test) - n
        idx = data.train.is_poison.nonzero().squeeze(1)
        assert len(idx) == info["n_poison"] == math.floor(0.01 * len(clean.train))
        assert torch.equal(data.train.y, clean.train.y)  # clean-label
        diff = data.train.x(idx).int() - clean.train.x(idx).int()
        assert diff.abs().max() <= 16 and diff.abs().max() > 0
    assert torch.equal(ctxs[0].data.train.x(), ctxs[1].data.train.x())


class _Const(nn.Module):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((len(x),), self.cls), 2).float()


def test_asr_counts_targets_predicted_as_poison_class(smoke_data):
    d = smoke_data
    targets = gm.select_targets(d.test, 0, 5, torch.Generator().manual_seed(0))
    info = {"target_rows": d.test.rows[targets].tolist(), "target_a": d.test.a[targets].tolist(),
            "poison_class": 1, "target_class": 0}
    rt = Runtime()
    assert gm.GM().success(_Const(1), replace(d), gm.Params(), info, rt)["asr"] == 100.0
    assert gm.GM().success(_Const(0), d, gm.Params(), info, rt)["asr"] == 0.0


@pytest.mark.slow
def test_table7_smoke_run(tmp_path):
    out = subprocess.run([sys.executable, "-m", "artifact", "table7", "--preset", "smoke", "--results", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "-> SANE" in out.stdout


def test_gm_crafts_in_a_whole_clean_context_and_caches_through_ctx_stage(tmp_path, monkeypatch, smoke_job):
    """The context GM crafts in is a complete one on the clean data (not the job's own, half-built), and its
    surrogate is a ctx.stage keyed by the whole surrogate key (shared by every GM setting)."""
    from artifact.attacks import ATTACKS
    from artifact.experiments import Context
    from artifact.store import Store
    from artifact.train import Runtime

    gm, seen = ATTACKS["gm"], {}

    def spy(ctx, params, seed):
        seen["ctx"] = ctx
        return ctx.data, {"spied": True}

    monkeypatch.setattr(gm, "poison_with_context", spy)
    cfg = smoke_job("erm", "gm", scale=0.05)
    job = Context(cfg, Store(tmp_path), Runtime(threads=1))
    view = seen["ctx"]
    assert view is not job and view.attack_info == {} and job.attack_info == {"spied": True}
    assert int(view.data.train.is_poison.sum()) == 0 and view.cfg == job.cfg
    assert view.seed("x") == job.seed("x")  # the same job's seeds and stage keys
    monkeypatch.undo()
    asked = []
    stage = Context.stage

    def record(self, kind, extra, compute, **kw):
        asked.append((kind, kw.get("whole_key", False)))
        return stage(self, kind, extra, compute, **kw)

    monkeypatch.setattr(Context, "stage", record)
    Context(cfg, Store(tmp_path), Runtime(threads=1))
    assert ("gm-poisons", False) in asked and ("gm-surrogate", True) in asked
