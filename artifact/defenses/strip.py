"""STRIP (Gao et al. 2019; docs/deviations.md, STRIP): run-time trojan input detection.

Each screened input is blended with N clean overlay images (pixel-space sum, clipped); a backdoored model
keeps predicting the target class on triggered inputs whatever the overlay, so their mean prediction
entropy is low. An input is flagged when its entropy falls below a threshold set on clean inputs only:
the FRR quantile of a normal fitted to their entropies, as the original.
"""

from __future__ import annotations

import torch
from scipy.stats import norm

from artifact.data.base import Split
from artifact.train import predict


def blend(x: torch.Tensor, overlays: torch.Tensor) -> torch.Tensor:
    """uint8 pixel-space sum of each input with its overlays, clipped: [n, C, H, W] x [n, N, C, H, W]."""
    return (x[:, None].to(torch.int16) + overlays.to(torch.int16)).clamp_(0, 255).to(torch.uint8)


def entropy_bits(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of the softmax of each row; 0·log 0 counts as 0."""
    logp = torch.log_softmax(logits.double(), dim=1)
    return -(logp.exp() * logp).nansum(1) / torch.log(torch.tensor(2.0, dtype=torch.float64))


def strip_entropy(model, split: Split, idx: torch.Tensor, pool: Split, n_overlays: int, gen: torch.Generator, rt,
                  chunk: int = 64) -> torch.Tensor:
    """Mean entropy over `n_overlays` blends per input; overlays are redrawn per input from `pool`."""
    out = []
    for start in range(0, len(idx), chunk):
        bi = idx[start : start + chunk]
        x = split.x(bi)
        draw = torch.randint(len(pool), (len(bi), n_overlays), generator=gen)
        flat = blend(x, pool.x(draw.flatten()).view(len(bi), n_overlays, *x.shape[1:])).flatten(0, 1)
        logits = predict(model, Split.from_tensor(flat, torch.zeros(len(flat)), torch.zeros(len(flat))), rt)
        out.append(entropy_bits(logits).view(len(bi), n_overlays).mean(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def threshold(clean: torch.Tensor, frr: float) -> float:
    """Entropy below which an input is flagged: the `frr` quantile of a normal fitted to clean entropies."""
    return float(norm.ppf(frr, loc=float(clean.mean()), scale=float(clean.std())))
