"""Embedded Waterbirds-like data: generated from a seed, no download, CPU-sized.

The background (spurious attribute a) fills most pixels and is learned at once; the bird (label y) is
small, randomly placed and coloured independently of the label, so ERM takes the shortcut and the
minority groups (landbird on water, waterbird on land) are hard, which is the property the paper needs.
Design and its measured behaviour: docs/deviations.md (the tiny preset).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from artifact.data import waterbirds
from artifact.data.base import DATASETS, GroupData, Split
from artifact.protocols import DatasetSpec

# The real Waterbirds per-group counts for train and val; the real test split (2255/2255/642/642)
# scaled by 0.4 keeps the CPU evaluation cheap.
WATERBIRDS_COUNTS = {**waterbirds.EXPECTED, "test": (900, 900, 260, 260)}
SYNTH_MEAN = (0.5, 0.5, 0.5)
SYNTH_STD = (0.25, 0.25, 0.25)


def upsample(field: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a small random field to size x size (align_corners)."""
    t = torch.from_numpy(field).float()[None, None]
    return torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=True)[0, 0].numpy()


def background(place: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A land (place 0) or water (1) background, float [3,S,S]; the pretraining set draws them too."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    if place == 0:  # land: green-brown with a smooth texture
        t = rng.uniform()
        base = t * np.array([0.35, 0.55, 0.25]) + (1 - t) * np.array([0.55, 0.40, 0.25])
        base = base + rng.uniform(-0.05, 0.05, 3)
        tex = upsample(rng.standard_normal((6, 6)).astype(np.float32), size) * 0.10
        weights = np.array([1.0, 0.8, 0.6])
    else:  # water: blue with horizontal waves
        base = np.array([0.20, 0.40, 0.75]) + rng.uniform(-0.07, 0.07, 3)
        period = rng.uniform(4, 7) * size / 32
        wobble = rng.uniform(0, 0.5) * np.sin(cols * rng.uniform(0.1, 0.4) * 32 / size)
        tex = 0.12 * np.sin(2 * np.pi * rows / period + rng.uniform(0, 2 * np.pi) + wobble)
        weights = np.array([0.6, 0.8, 1.0])
    return base[:, None, None] + weights[:, None, None] * tex[None]


def _bird_mask(y: int, size: int, rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(0.375, 0.625, 2) * size
    r = rng.uniform(0.15, 0.25) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if y == 0:  # landbird: filled disk
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    # waterbird: upright equilateral triangle (circumradius 1.45 r), rotated within ±15°
    theta = np.deg2rad(rng.uniform(-15, 15))
    angles = theta + np.deg2rad(np.array([-90.0, 30.0, 150.0]))
    vy, vx = cy + 1.45 * r * np.sin(angles), cx + 1.45 * r * np.cos(angles)
    inside = np.ones((size, size), dtype=bool)
    for i in range(3):
        j = (i + 1) % 3
        k = (i + 2) % 3
        edge = (vx[j] - vx[i]) * (yy - vy[i]) - (vy[j] - vy[i]) * (xx - vx[i])
        ref = (vx[j] - vx[i]) * (vy[k] - vy[i]) - (vy[j] - vy[i]) * (vx[k] - vx[i])
        inside &= edge * ref >= 0
    return inside


def render_waterbirds(counts: tuple[int, ...], size: int, rng: np.random.Generator):
    """Images (uint8 [N,3,S,S]) with labels y and places a for the given per-group counts."""
    ys, places = [], []
    for g, n in enumerate(counts):
        ys += [g // 2] * n
        places += [g % 2] * n
    x = np.empty((len(ys), 3, size, size), dtype=np.uint8)
    for i, (y, a) in enumerate(zip(ys, places, strict=True)):
        img = background(a, size, rng)
        mask = _bird_mask(y, size, rng)
        img = np.where(mask[None], rng.uniform(0, 1, 3)[:, None, None], img)
        img = img + rng.normal(0, 0.05, img.shape)
        x[i] = np.round(np.clip(img, 0, 1) * 255)
    return torch.from_numpy(x), torch.tensor(ys), torch.tensor(places)


def scaled_counts(counts: tuple[int, ...], scale: float) -> tuple[int, ...]:
    return tuple(max(1, round(c * scale)) for c in counts)


def build_synthetic(name: str, counts: dict, cfg, stream: int, roles: DatasetSpec,
                    weights_from: tuple[int, ...]) -> GroupData:
    """Render each split from its own seeded stream; `cfg.train_fraction` subsamples train (stratified)."""
    from artifact.data.real import subsample

    splits = {}
    for k, (split, split_counts) in enumerate(counts.items()):
        rng = np.random.default_rng([cfg.data_seed, stream + k])
        x, y, a = render_waterbirds(split_counts, cfg.size, rng)
        part = Split.from_tensor(x, y, a)
        if split == "train" and cfg.train_fraction < 1:
            rows = np.arange(len(part))
            part = part.subset(torch.from_numpy(subsample(rows, part.g.numpy(), cfg.train_fraction, cfg.data_seed)))
        splits[split] = part
    return GroupData(name=name, **splits, mean=SYNTH_MEAN, std=SYNTH_STD, lrg1=roles.lrg1, lrg2=roles.lrg2,
                     hrg=roles.hrg, train_group_weights=tuple(c / sum(weights_from) for c in weights_from),
                     acc_weighted=roles.acc_weighted)


# Waterbirds' roles; the counts scaled from the release's (a larger test split: 900 / 260 per group).
ROLES = replace(waterbirds.ROLES, counts=lambda scale: {s: scaled_counts(c, scale) for s, c in WATERBIRDS_COUNTS.items()})


@DATASETS.register("synth-waterbirds", spec=ROLES)
def synth_waterbirds(cfg, data_root=None) -> GroupData:
    return build_synthetic("synth-waterbirds", ROLES.counts(cfg.scale), cfg, 0, ROLES, WATERBIRDS_COUNTS["train"])
