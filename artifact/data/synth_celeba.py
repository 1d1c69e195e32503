"""Embedded CelebA-like data (y = blond, a = male): CelebA's group structure on the synthetic renderer.

What the paper's CelebA claims rest on is the structure, not faces: two large groups in the majority
class (44 % / 41 %), a 14 % group and a 0.85 % LRG-1 (blond males) in train, val/test with CelebA's own
(skewed) proportions, and a spurious attribute that is easier to learn than the label. The renderer of
synth-waterbirds provides exactly that: a = the large, easy background texture, y = the small shape,
so ERM takes the "male -> not blond" shortcut and LRG-1 is the hard group. LRG-2 does not exist
(as in the paper); HRG = the three other groups.
"""

from __future__ import annotations

from dataclasses import replace

from artifact.data import celeba
from artifact.data.base import DATASETS, GroupData
from artifact.data.celeba import EXPECTED as CELEBA_COUNTS  # the real per-split, per-group counts
from artifact.data.synthetic import build_synthetic, scaled_counts

# Fraction of the real counts rendered at scale 1: train ~9.0k (LRG-1 76), val/test ~3k (LRG-1 27) on a CPU.
SPLIT_FRACTION = {"train": 0.055, "val": 0.15, "test": 0.15}


def synth_celeba_counts(scale: float) -> dict[str, tuple[int, ...]]:
    return {s: scaled_counts(c, SPLIT_FRACTION[s] * scale) for s, c in CELEBA_COUNTS.items()}


ROLES = replace(celeba.ROLES, counts=synth_celeba_counts)


@DATASETS.register("synth-celeba", spec=ROLES)
def synth_celeba(cfg, data_root=None) -> GroupData:
    return build_synthetic("synth-celeba", synth_celeba_counts(cfg.scale), cfg, 100, ROLES, CELEBA_COUNTS["train"])
