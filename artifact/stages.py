"""What a job computes, without computing it: its stages by key, and their cost in images.

A method may describe its stages with `stages(cfg, params, case) -> list[Stage]` (an attack with
`stages(cfg, params)`), built from the same key helpers its `prepare`/`run` use, so that counting unique
keys over a grid is exactly the sharing the stage store will do. The one approximation is the final
model (`fit`): the store keys it by the multiset of training positions, known only after the stages
before it ran, so here it is keyed by where those positions come from (the identification stage, the
case, the upweight). Runtime coincidences (worst = standard when every poison is already in the error
set) are extra sharing this count cannot see.

Cost: a stage processes `epochs x (N x fraction + L x |E|)` training images plus its evaluation passes
(val per epoch for model selection, test once); `estimate_images` turns that into numbers from the
dataset's known split sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from artifact.config import ModelCfg, TrainCfg, build
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
    sizes: dict | None = None  # split sizes when not the job's dataset's (pretraining; see split_sizes)

    @property
    def id(self) -> str:
        return f"{self.kind}/{content_hash(self.key)}"


def fit_stage(cfg: dict, train: TrainCfg, source: dict, tag: str = "final", extra: dict | None = None,
              keep_model: bool = False, **cost) -> Stage:
    """A `ctx.fit_evaluate` stage: keyed like the store's, with `source` standing in for the index digest."""
    key = stage_key(cfg, {"train": asdict(train), "tag": tag, "index": source, "extra": extra or {},
                          "keep_model": keep_model})
    return Stage("fit", key, train=train, val_passes=train.epochs, **cost)


def job_stages(cfg: dict) -> list[Stage] | None:
    """Every stage job `cfg` needs (its attack's, its method's, and the clean reference's); None if a part
    has no `stages` description."""
    from artifact.attacks import ATTACKS
    from artifact.methods import METHODS

    method, attack = METHODS[cfg["method"]["name"]], ATTACKS[cfg["attack"]["name"]]
    if not hasattr(method, "stages"):
        return None
    params = build(method.Params, cfg["method"]["params"], "method.params")
    out = []
    if cfg["attack"]["name"] != "none":
        if not hasattr(attack, "stages") and hasattr(attack, "poison_with_context"):
            return None  # an attack that trains or caches but does not say how
        if hasattr(attack, "stages"):
            out += attack.stages(cfg, build(attack.Params, cfg["attack"]["params"], "attack.params"))
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
    n_hold = round(p.images * p.holdout)
    return [Stage("pretrain", pretrain.stage_key(model), train=p.train, val_passes=p.train.epochs, test_passes=0,
                  sizes={"train": p.images - n_hold, "val": n_hold, "test": 0, "minority": 0.0})]


def sharing(jobs) -> dict:
    """Stage counts over `jobs`: naive (every job computes all its stages) vs shared (unique keys)."""
    naive, unique, undescribed = {}, {}, set()
    for job in jobs:
        stages = job_stages(job.cfg)
        if stages is None:
            undescribed.add(job.cfg["method"]["name"] + "/" + job.cfg["attack"]["name"])
            stages = [Stage("job", {"id": job.id})]  # opaque: one unit, shared with nothing
        for s in stages:
            naive[s.kind] = naive.get(s.kind, 0) + 1
            unique.setdefault(s.id, s)
    shared = {}
    for s in unique.values():
        shared[s.kind] = shared.get(s.kind, 0) + 1
    trainings = {"naive": sum(n for k, n in naive.items() if _trains(unique, k)),
                 "shared": sum(n for k, n in shared.items() if _trains(unique, k))}
    return {"jobs": len(jobs), "naive": naive, "shared": shared, "stages": {"naive": sum(naive.values()),
            "shared": len(unique)}, "trainings": trainings, "undescribed": sorted(undescribed),
            "unique": unique}


def _trains(unique: dict, kind: str) -> bool:
    return kind == "job" or any(s.train is not None for s in unique.values() if s.kind == kind)


# ---------------------------------------------------------------------------------------------------
# Cost


# The low-represented groups (LRG-1, LRG-2) whose share of N stands in for JTT's error set |E|.
MINORITY_GROUPS = {"waterbirds": (1, 2), "celeba": (3,)}


def split_counts(dataset: dict) -> dict[str, tuple[int, ...]]:
    """Per-split group counts of a dataset config, from the published or generator counts (nothing loaded)."""
    from artifact.data import celeba, synthetic, waterbirds

    name, scale = dataset["name"], dataset.get("scale", 1.0)
    if name == "synth-waterbirds":
        return {k: synthetic.scaled_counts(v, scale) for k, v in synthetic.WATERBIRDS_COUNTS.items()}
    if name == "synth-celeba":
        from artifact.data.synth_celeba import synth_celeba_counts

        return synth_celeba_counts(scale)
    return {"waterbirds": waterbirds.EXPECTED, "celeba": celeba.EXPECTED}[name]


def split_sizes(dataset: dict) -> dict:
    """Images per split (train after `train_fraction`) and the minority share of train."""
    counts = split_counts(dataset)
    train = counts["train"]
    minority = sum(train[g] for g in MINORITY_GROUPS[dataset["name"].removeprefix("synth-")]) / sum(train)
    return {"train": round(sum(train) * dataset.get("train_fraction", 1.0)), "val": sum(counts["val"]),
            "test": sum(counts["test"]), "minority": minority}


def estimate_images(stage: Stage, sizes: dict) -> tuple[float, float]:
    """(training images, evaluation images) of one stage; |E| is estimated as the minority share of N."""
    n = sizes["train"]
    error_set = sizes["minority"] * n
    train = 0.0
    if stage.train is not None:
        train = stage.train.epochs * (n * stage.fraction + stage.upweight * error_set)
    train += stage.grad_passes * n
    evals = stage.val_passes * sizes["val"] + stage.test_passes * sizes["test"] + stage.train_passes * n
    return train, evals
