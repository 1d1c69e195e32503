"""SA: subpopulation attack, FeatureMatch + label flipping (Jagielski et al. 2021), docs/deviations.md.

The subpopulation is one annotated group g* (FeatureMatch on (y, a)). floor(rate * N_train) g* training
samples, drawn without replacement, get the flipped label 1 - y* in place (`mode: modify`, the paper's
"clean training samples the attack modifies into poisons"); `mode: append` instead appends copies drawn
with replacement beside their correctly labelled twins (or the validation split's g* images with
`source: val`). Poisons are flagged `is_poison` for analysis. ASR = accuracy on g* in the test split of a
model trained the same way on the clean data (same method, recipe and seed; `Context.reference`) minus the poisoned model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from artifact import metrics
from artifact.attacks import ATTACKS, poison_count
from artifact.attacks.dlbd import source_group
from artifact.errors import UserError
from artifact.train import predict


@dataclass(frozen=True)
class Params:
    rate: float = 0.02  # of the clean N_train
    # hrg: the largest group of the class without LRG-1 (DLBD's source group; Waterbirds landbird/land);
    # lrg1: the lowest-represented group. See docs/deviations.md for why hrg is the default.
    target: str = "hrg"
    source: str = "train"  # train: copies of training g* images | val: the validation split's g* images
    mode: str = "modify"  # modify: relabel training g* samples in place | append: add relabelled copies

    def validate(self):
        if not 0 < self.rate < 1:
            return "rate must be in (0, 1)"
        if self.target not in ("hrg", "lrg1"):
            return "target must be 'hrg' or 'lrg1'"
        if self.source not in ("train", "val"):
            return "source must be 'train' or 'val'"
        if self.mode not in ("modify", "append"):
            return "mode must be 'modify' or 'append'"
        if self.mode == "modify" and self.source != "train":
            return "mode 'modify' relabels training samples: it needs source 'train' (or use mode 'append')"
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
        n_poison = poison_count(params.rate, len(data.train))
        gen = torch.Generator().manual_seed(seed)
        if params.mode == "modify":
            if n_poison > len(pool):
                raise UserError(f"attack.rate: {n_poison} poisons requested but group {g} has only {len(pool)} "
                                "training samples to relabel; lower attack.rate or use attack.mode append")
            idx = pool[torch.randperm(len(pool), generator=gen)[:n_poison]].sort().values
            poisoned = data.train.replace_samples(idx, src.x(idx), 1 - src.y[idx])
        else:
            idx = pool[torch.randint(len(pool), (n_poison,), generator=gen)]
            poisoned = data.train.append_samples(src.x(idx), 1 - src.y[idx], src.a[idx])
        info = {"target_group": g, "n_poison": n_poison, "source": params.source, "mode": params.mode,
                "flipped_label": int(1 - g // 2)}
        return data.with_train(poisoned), info

    def stages(self, cfg, params) -> list:
        return []  # nothing cached: the poisoned set is recomputed in each job (seconds)

    def success(self, model, data, params: Params, info, rt, reference=None):
        test = data.test
        idx = (test.g == info["target_group"]).nonzero().squeeze(1)
        acc = metrics.acc(predict(model, test, rt, idx).argmax(1), test.y[idx])
        ref = reference["group_acc"][info["target_group"]]
        return {"asr": ref - acc, "target_acc": acc, "target_acc_clean": ref}


ATTACKS.register("sa")(SA())
