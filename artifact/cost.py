"""`--dry-run`: per target, jobs done, stages cached, and the compute left, priced from recorded wall times.

Cost of a stage: it processes `epochs x (N x fraction + L x |E|)` training images plus its evaluation
passes (val per epoch for model selection, test once); `estimate_images` turns that into numbers from the
dataset's known split sizes. The price list is `bench/throughput.json` (written by
`python bench/throughput.py --write-table`): images/s of our training step and of evaluation per
`arch@size@device`. Stages come from artifact/stages.py; those shared between targets count once in the total.

That table is measured once, at one batch size and under whatever load the machine had, so on its own it
can be several times off (tiny: 5.36 CPU-h priced, 0.73 measured). Where the results folder holds finished
jobs, their recorded wall times calibrate it: per `arch@size@device`, the jobs' total wall time over the
table's price of their stages (each stage once, as the store computed it), which also carries what the
table leaves out (data loading, evaluation batches, process start).
"""

from __future__ import annotations

import json
from pathlib import Path

from artifact.config import ROOT
from artifact.errors import UserError
from artifact.stages import Stage, job_stages
from artifact.store import PREPARE_TIMING

THROUGHPUT = ROOT / "bench" / "throughput.json"
ASSUMPTIONS = ("assumes: images = epochs x (N + L x |E|) + val pass per epoch + test pass, |E| ~ the LRG share of N, "
               "GM crafting ~ 3 x restarts x iterations x poisons; priced at bench/throughput.json's img/s "
               "(measured at one batch size, steady state, no data loading, no queueing)")


def split_counts(dataset: dict) -> dict[str, tuple[int, ...]]:
    """Per-split group counts of a dataset config, from its loader's DatasetSpec (nothing loaded)."""
    return _spec(dataset).counts(dataset.get("scale", 1.0))


def _spec(dataset: dict):
    from artifact.data import DATASETS

    spec = DATASETS.spec(dataset["name"], "dataset.name")
    if spec is None:
        raise UserError(f"dataset {dataset['name']!r} is registered without a DatasetSpec (its group roles and "
                        "split counts, artifact/protocols.py); register it with spec=...")
    return spec


def split_sizes(dataset: dict) -> dict:
    """Images per split (train after `train_fraction`) and the minority share of train."""
    counts = split_counts(dataset)
    train = counts["train"]
    minority = sum(train[g] for g in _spec(dataset).minority) / sum(train)
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


def load_throughput(path: Path = THROUGHPUT) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _rate_key(stage: Stage, device: str) -> str:
    return f"{stage.key['model']['arch']}@{stage.key['dataset']['size']}@{device}"


def stage_hours(stage: Stage, table: dict, device: str) -> float | None:
    """Hours of one stage on `device` ("cuda" or "cpu"), or None without a measured rate; a rate with a
    `factor` (from `calibrate`) is scaled by it."""
    rate = table.get(_rate_key(stage, device))
    if rate is None:
        return None
    train, evals = estimate_images(stage, stage.sizes or split_sizes(stage.key["dataset"]))
    return (train / rate["train_img_s"] + evals / rate["eval_img_s"]) / 3600 * rate.get("factor", 1.0)


def calibrate(store, table: dict) -> dict:
    """`table` with a `factor` per arch@size@device: the recorded wall time of the finished jobs in `store`
    over the table's price of their stages (each once). Rates without finished jobs are left as they are."""
    groups = {}  # rate key -> [recorded seconds, jobs, {stage id: stage}]
    for path in sorted(store.root.glob("jobs/*/result.json")):
        result = store.load_result(path.parent.name)
        if result is None:
            continue
        device = "cuda" if str(result.get("runtime", {}).get("device", "cpu")).startswith("cuda") else "cpu"
        try:
            stages = job_stages(result["config"])
        except (UserError, KeyError):  # a plugin this checkout does not have
            continue
        if not stages:
            continue
        group = groups.setdefault(_rate_key(stages[0], device), [0.0, 0, {}, device])
        group[0] += float(result.get("timing", {}).get("wall_s") or 0.0) + _prepare_wall_s(path.parent)
        group[1] += 1
        group[2].update({s.id: s for s in stages})
    out = dict(table)
    for key, (wall_s, jobs, stages, device) in groups.items():
        priced = sum(stage_hours(s, table, device) or 0.0 for s in stages.values())
        if key in table and priced > 0 and wall_s > 0:
            out[key] = {**table[key], "factor": wall_s / 3600 / priced, "recorded_jobs": jobs}
    return out


def _cached(store, stage: Stage) -> bool:
    """A stage with a real key (not `fit`, which is keyed by runtime positions) whose file exists."""
    return stage.kind != "fit" and store.stage_path(stage.kind, stage.key).is_file()


def _prepare_wall_s(folder: Path) -> float:
    """Seconds the job's shared stages took in wave 1 (before the job itself ran), 0 if not recorded."""
    try:
        return float(json.loads((folder / PREPARE_TIMING).read_text())["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def plan(targets: dict, store, table: dict | None = None, workers: int = 1) -> list[str]:
    """Lines for `--dry-run`: `targets` maps a target name to its jobs; priced by `table` (default:
    bench/throughput.json) calibrated on the finished jobs in `store`; `workers` share the total."""
    table = calibrate(store, load_throughput() if table is None else table)
    lines, total, seen, pending = [], {}, {}, []  # pending: each unfinished job's stage ids
    for name, jobs in targets.items():
        done_ids = {j.id for j in jobs if store.is_done(j.id)}
        stages = {}
        for job in jobs:
            ids = []
            for s in job_stages(job.cfg):
                stages[s.id] = (s, stages.get(s.id, (s, False))[1] or job.id in done_ids)
                ids.append(s.id)
            if job.id not in done_ids:
                pending.append(set(ids))
        todo = [s for s, done in stages.values() if not done and not _cached(store, s)]
        cost = _price(todo, table)
        for s in todo:
            if s.id not in seen:
                seen[s.id] = s
                for device, h in _price([s], table).items():
                    total[device] = total.get(device, 0.0) + h
        lines.append(f"  {name:<9} {len(jobs):>4} jobs, {len(done_ids):>4} done, {len(stages) - len(todo):>4}/"
                     f"{len(stages):<4} stages cached; left: {_fmt(cost)}")
    wall = _wall_hours(seen, pending, table, workers)
    lines.append(f"  total (shared stages once): {_fmt(total)}"
                 + (f"; about {_duration(wall)} of wall time with {workers} workers" if workers > 1 and wall else ""))
    recorded = {k: v for k, v in table.items() if "factor" in v}
    lines.append("  priced from recorded wall times: " + ", ".join(
        f"{k} x{v['factor']:.3g} of bench/throughput.json ({v['recorded_jobs']} finished jobs)" for k, v in recorded.items())
        if recorded else "  priced from bench/throughput.json alone (no finished job in the results folder to "
                         "calibrate it on; it can be several times off, docs/bench.md)")
    if total.get("unpriced"):
        lines.append("  unpriced: no measured rate for their arch@size@device in bench/throughput.json; on that "
                     "machine run `python bench/throughput.py --arch A --size S --write-table bench/throughput.json`")
    lines.append(f"  {ASSUMPTIONS}")
    return lines


def _wall_hours(todo: dict, pending: list[set], table: dict, workers: int) -> float:
    """Hours until the `todo` stages are done with `workers` workers: a stage every pending job needs (the
    pretraining) runs first while the others wait on its lock; the rest is shared between the workers."""
    common = set.intersection(*pending) & set(todo) if pending else set()

    def hours(ids) -> float:
        cost = _price([todo[i] for i in ids], table)
        return cost.get("GPU-h", 0.0) + cost.get("CPU-h", 0.0)

    return hours(common) + hours(set(todo) - common) / workers


def _price(stages: list[Stage], table: dict) -> dict:
    """{"GPU-h": h, "CPU-h": h, "unpriced": n}: GPU where a cuda rate is measured, else CPU, else unpriced."""
    out = {}
    for s in stages:
        for device, unit in (("cuda", "GPU-h"), ("cpu", "CPU-h")):
            h = stage_hours(s, table, device)
            if h is not None:
                out[unit] = out.get(unit, 0.0) + h
                break
        else:
            out["unpriced"] = out.get("unpriced", 0) + 1
    return out


def _duration(hours: float) -> str:
    seconds = round(hours * 3600)
    if seconds < 60:
        return f"{max(seconds, 1)} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _fmt(cost: dict) -> str:
    parts = [f"{cost[u]:.3g} {u}" for u in ("GPU-h", "CPU-h") if u in cost]
    if cost.get("unpriced"):
        parts.append(f"{int(cost['unpriced'])} stages unpriced")
    return ", ".join(parts) or "nothing"
