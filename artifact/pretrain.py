"""The embedded default's "ImageNet": a synthetic pretraining stage for the small CNN.

The paper's models start from ImageNet weights and are fine-tuned; a network trained from scratch on the
synthetic Waterbirds learns only the background for about ten epochs (test WGA 0), a different regime
from the paper's (docs/deviations.md, the tiny preset). Pretraining on a label-balanced set of eight shape
classes that are not the downstream ones (no disk, no triangle), each on a background drawn independently
of its class (the land and water textures, plain colours, stripes), gives a backbone that already sees
shapes: fine-tuned, ERM is accurate on average while a minority group stays the worst, as in the paper.

It is one stage per architecture and pretraining config, keyed without the dataset, the attack and the
seed (ImageNet weights are one file too), so every job, table and seed of a results folder shares it.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from artifact.config import ModelCfg, PretrainCfg
from artifact.data.base import Split
from artifact.data.synthetic import SYNTH_MEAN, SYNTH_STD, background, upsample
from artifact.models import Normalized, SmallCNN, build_model
from artifact.store import derive_seed

SHAPES = ("square", "cross", "ring", "bar", "ellipse", "diamond", "tee", "ell")
BACKGROUNDS = ("land", "water", "plain", "stripes")


def uses_pretraining(cfg: ModelCfg) -> bool:
    """A small CNN marked pretrained starts from this stage (ResNets load ImageNet weights instead)."""
    return cfg.arch == "smallcnn" and cfg.pretrained


def _shape_mask(shape: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Shape `shape` at a random position, size and rotation, as a boolean size x size mask."""
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    r = rng.uniform(0.15, 0.28) * size
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    u = (np.cos(theta) * (xx - cx) + np.sin(theta) * (yy - cy)) / r
    v = (-np.sin(theta) * (xx - cx) + np.cos(theta) * (yy - cy)) / r
    au, av, rad = np.abs(u), np.abs(v), np.hypot(u, v)
    name = SHAPES[shape]
    if name == "square":
        return (au <= 0.8) & (av <= 0.8)
    if name == "cross":
        return ((au <= 1) & (av <= 0.3)) | ((av <= 1) & (au <= 0.3))
    if name == "ring":
        return (rad <= 1) & (rad >= 0.55)
    if name == "bar":
        return (au <= 1.2) & (av <= 0.3)
    if name == "ellipse":
        return u**2 + (v / 0.5) ** 2 <= 1
    if name == "diamond":
        return au + av <= 1
    if name == "tee":
        return ((v >= -1) & (v <= -0.55) & (au <= 1)) | ((au <= 0.25) & (v >= -1) & (v <= 1))
    return ((u >= -1) & (u <= -0.5) & (av <= 1)) | ((v >= 0.5) & (v <= 1) & (u >= -1) & (u <= 0.8))  # ell


def _pretrain_background(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind < 2:  # the downstream land and water textures, so the backbone knows them but not as a label
        return background(kind, size, rng)
    base = rng.uniform(0.1, 0.9, 3)
    if kind == 2:  # a plain colour with smooth noise
        tex = upsample(rng.standard_normal((4, 4)).astype(np.float32), size) * 0.08
        return base[:, None, None] + tex[None]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)  # stripes at a random angle
    angle, period = rng.uniform(0, np.pi), rng.uniform(3, 8) * size / 32
    wave = np.sin(2 * np.pi * (np.cos(angle) * cols + np.sin(angle) * rows) / period)
    other = rng.uniform(0.1, 0.9, 3)
    mix = (wave > 0).astype(np.float32)
    return base[:, None, None] * mix[None] + other[:, None, None] * (1 - mix[None])


def render(cfg: PretrainCfg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images [N,3,S,S], shape labels (balanced: N / 8 each) and background kinds (uniform, independent)."""
    rng = np.random.default_rng([cfg.seed, 0])
    n = cfg.images
    labels = np.arange(n) % len(SHAPES)
    kinds = rng.integers(0, len(BACKGROUNDS), n)
    x = np.empty((n, 3, cfg.size, cfg.size), dtype=np.uint8)
    for i in range(n):
        img = _pretrain_background(int(kinds[i]), cfg.size, rng)
        mask = _shape_mask(int(labels[i]), cfg.size, rng)
        img = np.where(mask[None], rng.uniform(0, 1, 3)[:, None, None], img)
        img = img + rng.normal(0, 0.05, img.shape)
        x[i] = np.round(np.clip(img, 0, 1) * 255)
    return torch.from_numpy(x), torch.from_numpy(labels).long(), torch.from_numpy(kinds).long()


def stage_key(cfg: ModelCfg) -> dict:
    """What fixes the pretrained backbone: the architecture and the pretraining config, nothing downstream."""
    return {"dataset": {"name": "synth-pretrain", **asdict(cfg.pretrain)}, "model": {"arch": cfg.arch,
            "width": cfg.width}}


def _compute(cfg: ModelCfg, rt) -> dict:
    from artifact.train import predict, prepare, train

    p = cfg.pretrain
    x, y, kind = render(p)
    n_hold = p.n_holdout
    order = torch.randperm(p.images, generator=torch.Generator().manual_seed(derive_seed(stage_key(cfg), "split")))
    split = Split.from_tensor(x, y, kind)
    train_split, held = split.subset(order[n_hold:]), split.subset(order[:n_hold])
    torch.manual_seed(derive_seed(stage_key(cfg), "init"))
    model = prepare(Normalized(SmallCNN(cfg.width, len(SHAPES)), SYNTH_MEAN, SYNTH_STD), rt)

    def holdout_acc(epoch, model):
        acc = 100.0 * (predict(model, held, rt).argmax(1) == held.y).float().mean().item()
        return acc, {"holdout_acc": round(acc, 2)}

    out = train(model, train_split, p.train, derive_seed(stage_key(cfg), "train"), rt, select=holdout_acc)
    body = {k: v.cpu() for k, v in model.state_dict().items() if not k.startswith("net.fc.")}
    return {"body": body, "history": out["history"], "best_epoch": out["best_epoch"],
            "holdout_acc": out["history"][out["best_epoch"]]["holdout_acc"]}


def backbone(store, cfg: ModelCfg, rt) -> dict:
    """The pretrained stage of `cfg` (its weights without the 8-way head, and its held-out accuracy)."""
    return store.stage("pretrain", stage_key(cfg), lambda: _compute(cfg, rt))


def start_model(store, cfg: ModelCfg, mean, std, rt) -> torch.nn.Module:
    """A fresh model as a job starts it: built (its head seeded by the caller's torch seed), then, for a
    pretrained small CNN, its body replaced by the shared pretrained weights."""
    model = build_model(cfg, mean, std)
    if uses_pretraining(cfg):
        body = backbone(store, cfg, rt)["body"]
        # The body's state includes the input normalisation it was pretrained with; only the head stays fresh.
        missing, unexpected = model.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith("net.fc.") for k in missing):
            raise RuntimeError(f"pretrained body does not fit {cfg.arch} width {cfg.width}: {missing} {unexpected}")
    return model
