"""SA: subpopulation attack, FeatureMatch + label flipping (Jagielski et al. 2021), attacks_defenses.md §2.

The subpopulation is one annotated group g* (FeatureMatch on (y, a)). ceil(rate * N_train) copies of
g* images, drawn with replacement, get the flipped label 1 - y* and are appended to the training set
(flagged `is_poison` for analysis). ASR = accuracy on g* in the test split of a model trained the same
way on the clean data (same method, recipe and seed; `Context.reference`) minus the poisoned model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from artifact import metrics
from artifact.attacks import ATTACKS
from artifact.attacks.dlbd import source_group
from artifact.train import predict


@dataclass(frozen=True)
class Params:
    rate: float = 0.02  # of the clean N_train
    # hrg: the largest group of the class without LRG-1 (DLBD's source group; Waterbirds landbird/land);
    # lrg1: the lowest-represented group. See docs/deviations.md for why hrg is the default.
    target: str = "hrg"
    source: str = "train"  # train: copies of training g* images | val: the validation split's g* images

    def validate(self):
        if not 0 < self.rate < 1:
            return "rate must be in (0, 1)"
        if self.target not in ("hrg", "lrg1"):
            return "target must be 'hrg' or 'lrg1'"
        if self.source not in ("train", "val"):
            return "source must be 'train' or 'val'"
        return None


def target_group(data, params: Params) -> int:
    return data.lrg1 if params.target == "lrg1" else source_group(data)


class SA:
    Params = Params
    needs_reference = True

    def poison(self, data, params: Params, seed: int):
        g = target_group(data, params)
        src = data.split(params.source)
        pool = ((src.g == g) & ~src.is_poison).nonzero().squeeze(1)
        n_poison = math.ceil(params.rate * len(data.train))
        gen = torch.Generator().manual_seed(seed)
        idx = pool[torch.randint(len(pool), (n_poison,), generator=gen)]
        flipped = 1 - src.y[idx]
        poisoned = data.train.append_samples(src.x(idx), flipped, src.a[idx])
        info = {"target_group": g, "n_poison": n_poison, "source": params.source, "flipped_label": int(1 - g // 2)}
        return data.with_train(poisoned), info

    def success(self, model, data, params: Params, info, rt, reference=None):
        test = data.test
        idx = (test.g == info["target_group"]).nonzero().squeeze(1)
        acc = metrics.acc(predict(model, test, rt, idx).argmax(1), test.y[idx])
        ref = reference["group_acc"][info["target_group"]]
        return {"asr": ref - acc, "target_acc": acc, "target_acc_clean": ref}


ATTACKS.register("sa")(SA())
