"""`--dry-run`: per target, jobs done, stages cached, and the compute left, priced by measured throughput.

The price list is `bench/throughput.json` (written by `python bench/throughput.py --write-table`):
images/s of our training step and of evaluation per `arch@size@device`. A stage's images come from
artifact/stages.py; stages shared between targets are counted once in the total.
"""

from __future__ import annotations

import json
from pathlib import Path

from artifact.config import ROOT
from artifact.stages import Stage, estimate_images, job_stages, split_sizes

THROUGHPUT = ROOT / "bench" / "throughput.json"
ASSUMPTIONS = ("assumes: images = epochs x (N + L x |E|) + val pass per epoch + test pass, |E| ~ the LRG share of N, "
               "GM crafting ~ 3 x restarts x iterations x poisons; priced at bench/throughput.json's img/s "
               "(measured at one batch size, steady state, no data loading, no queueing)")


def load_throughput(path: Path = THROUGHPUT) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _rate(table: dict, stage: Stage, device: str) -> dict | None:
    return table.get(f"{stage.key['model']['arch']}@{stage.key['dataset']['size']}@{device}")


def stage_hours(stage: Stage, table: dict, device: str) -> float | None:
    """Hours of one stage on `device` ("cuda" or "cpu"), or None without a measured rate."""
    rate = _rate(table, stage, device)
    if rate is None:
        return None
    train, evals = estimate_images(stage, stage.sizes or split_sizes(stage.key["dataset"]))
    return (train / rate["train_img_s"] + evals / rate["eval_img_s"]) / 3600


def _cached(store, stage: Stage) -> bool:
    """A stage with a real key (not `fit`, which is keyed by runtime positions) whose file exists."""
    return stage.kind not in ("fit", "job") and store.stage_path(stage.kind, stage.key).is_file()


def plan(targets: dict, store, table: dict | None = None) -> list[str]:
    """Lines for `--dry-run`: `targets` maps a target name to its jobs."""
    table = load_throughput() if table is None else table
    lines, total, seen = [], {}, set()
    for name, jobs in targets.items():
        done_ids = {j.id for j in jobs if store.is_done(j.id)}
        stages, opaque = {}, 0
        for job in jobs:
            described = job_stages(job.cfg)
            opaque += described is None
            for s in described or []:
                stages[s.id] = (s, stages.get(s.id, (s, False))[1] or job.id in done_ids)
        todo = [s for s, done in stages.values() if not done and not _cached(store, s)]
        cost = _price(todo, table)
        for s in todo:
            if s.id not in seen:
                seen.add(s.id)
                for device, h in _price([s], table).items():
                    total[device] = total.get(device, 0.0) + h
        lines.append(f"  {name:<9} {len(jobs):>4} jobs, {len(done_ids):>4} done, {len(stages) - len(todo):>4}/"
                     f"{len(stages):<4} stages cached; left: {_fmt(cost)}"
                     + (f" (+{opaque} jobs without a stage description)" if opaque else ""))
    lines.append(f"  total (shared stages once): {_fmt(total)}")
    if total.get("unpriced"):
        lines.append("  unpriced: no measured rate for their arch@size@device in bench/throughput.json; on that "
                     "machine run `python bench/throughput.py --arch A --size S --write-table bench/throughput.json`")
    lines.append(f"  {ASSUMPTIONS}")
    return lines


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


def _fmt(cost: dict) -> str:
    parts = [f"{cost[u]:.3g} {u}" for u in ("GPU-h", "CPU-h") if u in cost]
    if cost.get("unpriced"):
        parts.append(f"{int(cost['unpriced'])} stages unpriced")
    return ", ".join(parts) or "nothing"
