"""ERM: one model on the (possibly poisoned) training set, selected by validation WGA."""

from dataclasses import dataclass, field

from artifact.config import TrainCfg
from artifact.methods import METHODS
from artifact.stages import fit_stage


@dataclass(frozen=True)
class Params:
    final: TrainCfg = field(default_factory=TrainCfg)


class ERM:
    Params = Params
    cases = ("standard",)

    def prepare(self, ctx, params):
        return None

    def run(self, ctx, params, case):
        return ctx.fit_evaluate(params.final)

    def stages(self, cfg, params, case):
        return [fit_stage(cfg, params.final, {"all": True})]


METHODS.register("erm")(ERM())
