"""No attack: the clean training set (the reference for SA and for sanity checks)."""

from dataclasses import dataclass

from artifact.attacks import ATTACKS


@dataclass(frozen=True)
class Params:
    pass


class Clean:
    Params = Params
    needs_reference = False

    def poison(self, data, params, seed):
        return data, {}

    def stages(self, cfg, params) -> list:
        return []  # nothing cached: the poisoned set is recomputed in each job (seconds)

    def success(self, model, data, params, info, rt, reference=None):
        return {}


ATTACKS.register("none")(Clean())
