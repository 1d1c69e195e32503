"""The plugin contracts, typed: what a method, an attack and a dataset loader provide.

A plugin is one module that registers an object under the name the configs use (artifact/registry.py loads
it only when that name is used); `Registry(..., protocol=...)` checks at registration that it has every
required member, so a missing one is an error naming the plugin and the member, not an AttributeError deep
inside a job. docs/architecture.md says how to add each kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Method(Protocol):
    """A training method (ERM, JTT, GEORGE, EPIC...). `Params` is a frozen dataclass of its settings (each
    training run a nested `TrainCfg`); a preset that does not list the method runs `Params()`."""

    Params: type
    cases: tuple[str, ...]  # the interventions it supports, e.g. ("worst", "standard", "ideal")

    def prepare(self, ctx, params) -> Any:
        """Compute the stages shared by all cases (`ctx.stage`); executors run it once per sibling group."""

    def run(self, ctx, params, case: str) -> dict:
        """The job's metrics."""

    def stages(self, cfg: dict, params, case: str) -> list:
        """Its `stages.Stage`s, keyed by the same functions `prepare`/`run` pass to `ctx.stage`
        (tests/test_stage_contract.py holds every pair to it)."""


class Attack(Protocol):
    """A poisoning attack. Either `poison(data, params, seed) -> (data, info)` or, for one that trains or
    caches (GM), `poison_with_context(ctx, params, seed)`. Optional flags: `needs_reference` (ASR against
    the same method on clean data, SA), `backdoor` (a clean model has a test-time success rate too: the
    quick preset's baseline)."""

    Params: type

    def success(self, model, data, params, info, rt, reference=None) -> dict:
        """At least `asr`, on the test split."""

    def stages(self, cfg: dict, params) -> list:
        """The stages it caches (GM's surrogate and poisons); [] for one that computes nothing to keep."""


class DatasetLoader(Protocol):
    """`(DatasetCfg, data_root) -> GroupData` of uint8 images at model resolution, registered with its
    `DatasetSpec` (`DATASETS.register(name, spec=...)`)."""

    def __call__(self, cfg, data_root: str | None): ...


@dataclass(frozen=True)
class DatasetSpec:
    """What is known of a dataset without loading it: its group roles (group g = 2*y + a) and its per-split
    group counts, which the loader builds from and the dry run prices from."""

    lrg1: int  # the lowest-represented group, whose class the attacks target
    lrg2: int | None  # the second (None: CelebA has none)
    hrg: tuple[int, ...]  # the highest-represented groups
    counts: Callable[[float], dict[str, tuple[int, ...]]]  # split -> group counts at a `scale` (real: the release's)
    acc_weighted: bool = False  # ACC is the train-weighted group average (Waterbirds), else plain accuracy

    @property
    def minority(self) -> tuple[int, ...]:
        """LRG-1 and LRG-2: their share of N stands in for JTT's error set |E| in the cost model."""
        return tuple(g for g in (self.lrg1, self.lrg2) if g is not None)


REQUIRED = {"method": ("Params", "cases", "prepare", "run", "stages"), "attack": ("Params", "success", "stages")}


def conformance_problem(kind: str, name: str, obj) -> str | None:
    """What `obj`, registered as `kind` `name`, lacks of its protocol (None: nothing)."""
    missing = [m for m in REQUIRED.get(kind, ()) if not hasattr(obj, m)]
    if kind == "attack" and not (hasattr(obj, "poison") or hasattr(obj, "poison_with_context")):
        missing.append("poison (or poison_with_context)")
    if kind == "dataset" and not callable(obj):
        missing.append("__call__")
    if not missing:
        return None
    return f"{kind} {name!r} lacks {', '.join(missing)} (artifact/protocols.py: {kind.capitalize()})"
