"""EPIC (Yang et al. 2022) as the official schedule runs it (docs/deviations.md, EPIC).

One training run; at the start of each selection epoch the model's gradient proxy on all training points
picks per-class medoids and the points isolated in their own cluster are removed for good
(artifact/defenses/epic.py). The model is then selected by validation WGA (Appendix A.1). Cases intervene
on what gets removed: ideal never removes a clean LRG-1/LRG-2 sample, worst removes all of them at the
first selection, standard applies EPIC as-is. The removal epoch of every sample is kept, so ELMF per
role and iteration (Figure 1) and EPIC stopped earlier (Table 12) come from the same run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from artifact.config import TrainCfg
from artifact.defenses import epic
from artifact.methods import METHODS
from artifact.stages import Stage, fit_stage
from artifact.train import predict


@dataclass(frozen=True)
class Params:
    final: TrainCfg = field(default_factory=TrainCfg)
    subset_size: float = 0.2  # medoids per selection, as a fraction of N (the budget B)
    subset_freq: int = 1  # select every this many epochs ...
    drop_after: int = 1  # ... from this epoch ...
    stop_after: int = 10  # ... until before this one
    cluster_thresh: float = 1.0  # clusters of this size or smaller are isolated
    path: str = "auto"  # facility location: auto (exact 1-D for 2 classes) | dense | 1d
    cluster_index: str = "official"  # official: the official code's per-class size lookup | fixed (defenses/epic.py)

    def validate(self):
        if not 0 < self.subset_size < 1:
            return "subset_size must be in (0, 1) (EPIC is off at 1)"
        if self.subset_freq < 1 or self.drop_after < 0 or self.stop_after <= self.drop_after:
            return "need subset_freq >= 1, drop_after >= 0 and stop_after > drop_after"
        if self.path not in epic.PATHS:
            return f"path must be one of {', '.join(epic.PATHS)}"
        if self.cluster_index not in epic.CLUSTER_INDEX:
            return f"cluster_index must be one of {', '.join(epic.CLUSTER_INDEX)}"
        return None

    def epochs(self) -> list[int]:
        return epic.selection_epochs(self.final.epochs, self.subset_freq, self.drop_after, self.stop_after)


def minority(data) -> torch.Tensor:
    """Clean LRG-1/LRG-2 training samples: what the ideal case protects and the worst case removes."""
    t = data.train
    groups = [g for g in (data.lrg1, data.lrg2) if g is not None]
    return torch.isin(t.g, torch.tensor(groups)) & ~t.is_poison


class Pruner:
    """train()'s reindex hook: EPIC's selection at the scheduled epochs, with permanent removal."""

    def __init__(self, ctx, params: Params, case: str):
        self.ctx, self.params, self.case = ctx, params, case
        self.epochs = params.epochs()
        self.minority = minority(ctx.data)
        self.removed_at = torch.full((len(ctx.data.train),), -1, dtype=torch.long)

    def __call__(self, epoch: int, model):
        if epoch not in self.epochs:
            return None
        train = self.ctx.data.train
        feats = predict(model, train, self.ctx.rt, features=True)  # eval mode, all N points
        g = epic.gradient_proxy(feats.numpy(), model.head.weight.detach().float().cpu().numpy(), train.y.numpy())
        rng = np.random.default_rng(self.ctx.seed("epic-budget", epoch))
        drop = torch.from_numpy(epic.isolated(g, train.y.numpy(), self.params.subset_size,
                                              self.params.cluster_thresh, rng, self.params.path,
                                              self.params.cluster_index))
        if self.case == "ideal":
            drop &= ~self.minority
        elif self.case == "worst" and epoch == self.epochs[0]:
            drop |= self.minority
        self.removed_at[drop & (self.removed_at < 0)] = epoch
        return (self.removed_at < 0).nonzero().squeeze(1)

    def state_dict(self) -> dict:  # train()'s checkpoint: removals are permanent across a resume
        return {"removed_at": self.removed_at}

    def load_state_dict(self, state: dict) -> None:
        self.removed_at = state["removed_at"]

    def summary(self) -> dict:
        return {"removed_at": self.removed_at, "selection_epochs": self.epochs}


def elmf_curve(ctx, removed_at: torch.Tensor, epochs: list[int]) -> list[dict]:
    """ELMF per role after each selection (cumulative removals), one entry per EPIC iteration."""
    return [{"iteration": i + 1, "epoch": e, **ctx.rates((removed_at >= 0) & (removed_at <= e))}
            for i, e in enumerate(epochs)]


def fit_extra(params: Params, case: str) -> dict:
    """What the EPIC run's `fit` key adds: the selection settings (the training recipe is in it already)."""
    return {"epic": {k: v for k, v in asdict(params).items() if k != "final"}, "case": case}


def fit(ctx, params: Params, case: str) -> dict:
    """The EPIC training run of `case` (cached; shared with EPIC+JTT, which reads its removal epochs)."""
    return ctx.fit_evaluate(params.final, tag="epic", key_extra=fit_extra(params, case),
                            reindex=Pruner(ctx, params, case))


class EPIC:
    Params = Params
    cases = ("worst", "standard", "ideal")

    def prepare(self, ctx, params: Params):
        return None

    def run(self, ctx, params: Params, case: str) -> dict:
        out = fit(ctx, params, case)
        record = out.pop("reindex")
        removed_at = record["removed_at"]
        out["elmf_curve"] = elmf_curve(ctx, removed_at, record["selection_epochs"])
        out["elmf"] = ctx.rates(removed_at >= 0)  # = the last iteration's
        out["removed"] = int((removed_at >= 0).sum())
        return out


    def stages(self, cfg: dict, params: Params, case: str) -> list[Stage]:
        """One pruned training run per case (artifact/stages.py); a feature pass over N per selection."""
        return [stage(cfg, params, case)]


def stage(cfg: dict, params: Params, case: str) -> Stage:
    """`fit`'s stage, keyed as `fit` keys it (all positions, tag epic, the EPIC settings and case)."""
    return fit_stage(cfg, params.final, {"all": True}, tag="epic", extra=fit_extra(params, case),
                     train_passes=len(params.epochs()))


METHODS.register("epic")(EPIC())
