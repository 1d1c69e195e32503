"""A method from outside the package, in one file (tests/test_plugins.py loads it through OILWATER_PLUGINS):
ERM under its own name and recipe. No preset lists it, so every preset runs it with these Params defaults."""

from dataclasses import dataclass, field

from artifact.config import TrainCfg
from artifact.methods import METHODS
from artifact.stages import fit_stage


@dataclass(frozen=True)
class Params:
    final: TrainCfg = field(default_factory=lambda: TrainCfg(epochs=1, lr=1e-2, batch_size=128))


class Toy:
    Params = Params
    cases = ("standard",)

    def prepare(self, ctx, params: Params):
        return None

    def run(self, ctx, params: Params, case: str) -> dict:
        return ctx.fit_evaluate(params.final, tag="toy")

    def stages(self, cfg: dict, params: Params, case: str) -> list:
        return [fit_stage(cfg, params.final, {"all": True}, tag="toy")]


METHODS.register("toy")(Toy())
