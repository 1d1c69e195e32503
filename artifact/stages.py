"""What a job computes, without computing it: its stages by key.

A method describes its stages with `stages(cfg, params, case) -> list[Stage]` (an attack with
`stages(cfg, params)`), built from the same key functions its `prepare`/`run` pass to `ctx.stage`
(`stage_key`, `fit_key` and the plugin's own), so that counting unique keys over a grid is exactly the
sharing the stage store will do; tests/test_stage_contract.py runs a job per (method, attack) pair and
compares the keys the store wrote with these. What only the run knows is named, not guessed: a
`Stage.runtime` path (the final model's `index`, the multiset of training positions) holds here where
its value comes from (the identification stage, the case, the upweight) and is left out of that
comparison. Runtime coincidences (worst = standard when every poison is already in the error set) are
extra sharing this count cannot see. The cost of a stage is artifact/cost.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from artifact.attacks import ATTACKS
from artifact.config import ModelCfg, TrainCfg, build
from artifact.methods import METHODS
from artifact.store import content_hash


def stage_key(cfg: dict, extra: dict) -> dict:
    """The key `Context.stage` hashes: what fixes the poisoned training set, the model, and the stage's own part."""
    return {"dataset": cfg["dataset"], "attack": cfg["attack"], "replicate": cfg["seed"], "model": cfg["model"],
            **extra}


def clean_cfg(cfg: dict) -> dict:
    """The job config of `Context.reference`: the same method, standard case, on the clean data."""
    return {**cfg, "attack": {"name": "none", "params": {}}, "case": "standard"}


@dataclass(frozen=True)
class Stage:
    kind: str  # the store's stage kind (jtt-id, fit, gm-surrogate, ...)
    key: dict  # what the store hashes (for `fit`: the provenance of the training positions)
    train: TrainCfg | None = None  # the training run it performs; None: no training (clustering)
    upweight: int = 0  # L: extra copies of the error set per epoch
    fraction: float = 1.0  # share of N trained per epoch (a pruned or subsampled set)
    val_passes: int = 0  # eval passes over the validation split (model selection: one per epoch)
    test_passes: int = 1  # eval passes over the test split (the stage's own evaluation)
    train_passes: int = 0  # eval passes over the training split (features, predictions)
    grad_passes: float = 0.0  # extra forward+backward passes over N outside `train` (poison crafting)
    runtime: tuple[str, ...] = ()  # dotted paths of `key` that only the run knows (here: their provenance)
    sizes: dict | None = None  # split sizes when not the job's dataset's (pretraining; see split_sizes)

    @property
    def id(self) -> str:
        return f"{self.kind}/{content_hash(self.key)}"


def fit_key(train: TrainCfg, index, tag: str = "final", extra: dict | None = None, keep_model: bool = False) -> dict:
    """The part of a `fit` stage's key that `Context.fit_evaluate` adds: `index` is the digest of the
    training positions (at run time) or where they come from (in `fit_stage`)."""
    return {"train": asdict(train), "tag": tag, "index": index, "extra": extra or {}, "keep_model": keep_model}


def fit_stage(cfg: dict, train: TrainCfg, source: dict, tag: str = "final", extra: dict | None = None,
              keep_model: bool = False, runtime: tuple[str, ...] = (), **cost) -> Stage:
    """A `ctx.fit_evaluate` stage: keyed like the store's, with `source` standing in for the index digest
    (and any other `runtime` path of the key: `extra.`-prefixed, as `runtime` names them in the key)."""
    key = stage_key(cfg, fit_key(train, source, tag, extra, keep_model))
    return Stage("fit", key, train=train, val_passes=train.epochs, runtime=("index", *runtime), **cost)


def known_part(key: dict, runtime: tuple[str, ...]) -> dict:
    """`key` without its `runtime` paths: what a prediction and the run must agree on."""
    out = dict(key)
    for path in runtime:
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node[p] = dict(node.get(p, {}))
            node = node[p]
        node.pop(leaf, None)
    return out


def job_stages(cfg: dict) -> list[Stage]:
    """Every stage job `cfg` needs: its attack's, its method's, and the clean reference's (every plugin
    describes its stages: artifact/protocols.py)."""
    method, attack = METHODS[cfg["method"]["name"]], ATTACKS[cfg["attack"]["name"]]
    params = build(method.Params, cfg["method"]["params"], "method.params")
    out = [*attack.stages(cfg, build(attack.Params, cfg["attack"]["params"], "attack.params"))]
    out += method.stages(cfg, params, cfg["case"])
    out += pretrain_stages(cfg)
    if "clean_baseline" in cfg:  # Context.clean_asr's ERM model on the clean data
        out.append(fit_stage(clean_cfg(cfg), build(TrainCfg, cfg["clean_baseline"], "clean_baseline"), {"all": True},
                             tag="clean-baseline", keep_model=True))
    if getattr(attack, "needs_reference", False):
        out += method.stages(clean_cfg(cfg), params, "standard")
    return out


def pretrain_stages(cfg: dict) -> list[Stage]:
    """The synthetic pretraining stage a pretrained small CNN starts from (one per architecture and config)."""
    from artifact import pretrain

    model = build(ModelCfg, cfg["model"], "model")
    if not pretrain.uses_pretraining(model):
        return []
    p = model.pretrain
    n_hold = p.n_holdout
    return [Stage("pretrain", pretrain.stage_key(model), train=p.train, val_passes=p.train.epochs, test_passes=0,
                  sizes={"train": p.images - n_hold, "val": n_hold, "test": 0, "minority": 0.0})]


def sharing(jobs) -> dict:
    """Stage counts over `jobs`: naive (every job computes all its stages) vs shared (unique keys)."""
    naive, unique = {}, {}
    for job in jobs:
        for s in job_stages(job.cfg):
            naive[s.kind] = naive.get(s.kind, 0) + 1
            unique.setdefault(s.id, s)
    shared = {}
    for s in unique.values():
        shared[s.kind] = shared.get(s.kind, 0) + 1
    trainings = {"naive": sum(n for k, n in naive.items() if _trains(unique, k)),
                 "shared": sum(n for k, n in shared.items() if _trains(unique, k))}
    return {"jobs": len(jobs), "naive": naive, "shared": shared, "stages": {"naive": sum(naive.values()),
            "shared": len(unique)}, "trainings": trainings, "unique": unique}


def _trains(unique: dict, kind: str) -> bool:
    return any(s.train is not None for s in unique.values() if s.kind == kind)
