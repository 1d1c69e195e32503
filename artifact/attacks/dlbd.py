"""DLBD: dirty-label backdoor with a white-square trigger (BadNets-style), docs/deviations.md.

floor(rate * N_train) samples drawn (seeded) from the largest group of the class that is not LRG-1's,
stamped with the trigger and relabelled to LRG-1's class, replacing the originals in place. They keep
their true group and an `is_poison` flag for analysis only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from artifact import metrics
from artifact.attacks import ATTACKS, poison_count
from artifact.train import predict


@dataclass(frozen=True)
class Params:
    rate: float = 0.01  # fraction of N_train
    trigger_px_224: int = 25  # side of the square on a 224 px image; scaled with the resolution
    margin_px: int = 1  # gap to the bottom-right corner

    def validate(self):
        return None if 0 < self.rate < 1 else "rate must be in (0, 1)"


def trigger_box(size: int, params: Params) -> tuple[slice, slice]:
    """Rows/cols of the trigger: 25x25 at 1 px from the corner on 224 px, the same fraction elsewhere."""
    side = max(1, round(params.trigger_px_224 * size / 224))
    end = size - params.margin_px
    return slice(end - side, end), slice(end - side, end)


def stamp(x: torch.Tensor, params: Params) -> torch.Tensor:
    """A copy of `x` (uint8 or [0,1] float pixels) with the white trigger."""
    x = x.clone()
    rows, cols = trigger_box(x.shape[-1], params)
    x[..., rows, cols] = 255 if x.dtype == torch.uint8 else 1.0
    return x


def source_group(data) -> int:
    """The HRG of the class without LRG-1: the largest clean train group of the other class."""
    counts = data.train.group_counts()
    other = 1 - data.lrg1_class
    return max((2 * other, 2 * other + 1), key=lambda g: counts[g])


class DLBD:
    Params = Params
    needs_reference = False
    backdoor = True

    def poison(self, data, params: Params, seed: int):
        train = data.train
        n_poison = poison_count(params.rate, len(train))
        pool = ((train.g == source_group(data)) & ~train.is_poison).nonzero().squeeze(1)
        gen = torch.Generator().manual_seed(seed)
        idx = pool[torch.randperm(len(pool), generator=gen)[:n_poison]].sort().values
        target = torch.full((len(idx),), data.lrg1_class, dtype=torch.long)
        poisoned = train.replace_samples(idx, stamp(train.x(idx), params), target)
        return data.with_train(poisoned), {"target": data.lrg1_class, "n_poison": len(idx)}

    def stages(self, cfg, params) -> list:
        return []  # nothing cached: the poisoned set is recomputed in each job (seconds)

    def success(self, model, data, params: Params, info, rt, reference=None):
        test = data.test
        src = (test.y != info["target"]).nonzero().squeeze(1)
        clean = predict(model, test, rt, src).argmax(1)
        trig = predict(model, test, rt, src, transform=lambda x: stamp(x, params)).argmax(1)
        asr, asr_all = metrics.asr_backdoor(clean, trig, test.y[src], info["target"])
        return {"asr": asr, "asr_all": asr_all}


ATTACKS.register("dlbd")(DLBD())
