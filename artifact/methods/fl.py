"""Federated learning with a robust server rule, measured against FedAvg (Table 9, Appendix A.3).

The paper reports each defense's drop in WGA and ACC relative to an undefended FedAvg model. The FedAvg
run is a stage keyed only by the partition, the federation settings and the seed, so it is trained
once per (partition, seed) and shared by every defense's job; both runs draw the same partition, the
same clients each round and the same local seeds, so the drop is a paired difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch

from artifact.data.base import N_GROUPS
from artifact.defenses.federated import partition
from artifact.defenses.federated.aggregators import AggCfg
from artifact.defenses.federated.simulation import FedCfg, simulate
from artifact.methods import METHODS
from artifact.stages import Stage, stage_key

BASELINE = AggCfg(name="fedavg")


def fl_key(fed: FedCfg, agg: AggCfg) -> dict:
    """What an `fl` stage adds to the job's key: the federation and the server rule."""
    return {"fed": asdict(fed), "agg": agg.key()}


@dataclass(frozen=True)
class Params:
    fed: FedCfg = field(default_factory=FedCfg)
    agg: AggCfg = field(default_factory=AggCfg)

    def validate(self):
        m = self.fed.clients_per_round
        if self.agg.name == "trimmed-mean" and m - 2 * self.agg.trim < 1:
            return (f"trimmed mean drops 2*{self.agg.trim} of {m} clients per round; lower agg.trim or "
                    "raise fed.fraction * fed.users")
        return None


class FL:
    Params = Params
    cases = ("standard",)

    def _parts(self, ctx, fed: FedCfg, minority: tuple[int, ...]):
        train = ctx.data.train
        seed = ctx.seed("fl-partition", {"iid": fed.iid, "users": fed.users, "minority_users": fed.minority_users})
        if fed.iid:
            return partition.iid(len(train), fed.users, seed)
        return partition.non_iid(train.g, minority, fed.users, fed.minority_users, seed)

    def _simulate(self, ctx, fed: FedCfg, agg: AggCfg) -> dict:
        key = fl_key(fed, agg)
        ckpt = ctx.partial_path("fl", key)
        # The minority groups: everything but the highest-represented groups (Waterbirds: LRG-1 and LRG-2).
        minority = torch.tensor([g for g in range(N_GROUPS) if g not in ctx.data.hrg])

        def compute():
            parts = self._parts(ctx, fed, tuple(minority.tolist()))
            model = ctx.new_model("fl")
            out = simulate(model, ctx.data.train, parts, fed, agg, ctx.seed, ctx.rt, checkpoint=ckpt,
                           evaluate=lambda mdl: ctx.split_metrics(mdl, "test"))
            holders = sum(bool(torch.isin(ctx.data.train.g[p], minority).any()) for p in parts)
            return {"test": ctx.evaluate(model), "history": out["history"],
                    "client_sizes": [len(p) for p in parts], "minority_holders": holders}

        return ctx.stage("fl", key, compute)

    def prepare(self, ctx, params: Params) -> dict:
        return self._simulate(ctx, params.fed, BASELINE)

    def run(self, ctx, params: Params, case: str) -> dict:
        base = self.prepare(ctx, params)
        out = self._simulate(ctx, params.fed, params.agg)
        test, ref = out["test"], base["test"]
        return {**test, "wga_drop": ref["wga"] - test["wga"], "acc_drop": ref["acc"] - test["acc"],
                "fedavg": ref, "history": out["history"], "client_sizes": out["client_sizes"],
                "minority_holders": out["minority_holders"]}


    def stages(self, cfg: dict, params: Params, case: str) -> list[Stage]:
        """The FedAvg run (shared by every defense) and the defended run (artifact/stages.py). Per round,
        fraction x users clients train local.epochs over their N / users samples."""
        fed = params.fed
        local = replace(fed.local, epochs=fed.rounds * fed.local.epochs)
        evals = fed.rounds // fed.eval_every + 1 if fed.eval_every else 1
        return [Stage("fl", stage_key(cfg, fl_key(fed, agg)), train=local, fraction=fed.fraction,
                      test_passes=evals) for agg in (BASELINE, params.agg)]


METHODS.register("fl")(FL())
