"""How many trainings stage sharing saves on a grid, counted from the stage keys (nothing is trained).

    python bench/stage_sharing.py [--preset paper] [--targets all | table2,table3 ...] [--seeds N]

Naive: every job computes all of its stages itself (its attack's, e.g. GM's surrogate and crafted
poisons; its method's, e.g. JTT's identification model and final model; and, for SA, the clean
reference run). Shared: the unique stage keys over all targets, which is what the stage store
computes (artifact/stages.py says how `fit` stages are keyed without running anything).
"""

from __future__ import annotations

import argparse
import json
import sys

from artifact.config import load_preset
from artifact.cost import estimate_images, split_sizes
from artifact.grid import expand, load_table, table_names
from artifact.stages import job_stages, sharing


def count(targets: list[str], preset_name: str, seeds: int | None = None) -> dict:
    """Naive: every table runs its own jobs (a job in two tables twice); shared: unique stage keys."""
    preset = load_preset(preset_name)
    jobs = [job for name in targets for job in expand(load_table(name), preset, seeds)]
    out = sharing(jobs)
    unique = out.pop("unique")
    naive_images = sum(sum(estimate_images(s, split_sizes(job.cfg["dataset"]))) for job in jobs
                       for s in job_stages(job.cfg))
    shared_images = sum(sum(estimate_images(s, split_sizes(s.key["dataset"]))) for s in unique.values())
    return {"preset": preset_name, "targets": targets, "distinct_jobs": len({j.id for j in jobs}), **out,
            "images": {"naive": round(naive_images), "shared": round(shared_images)}}


def render(r: dict) -> str:
    lines = [f"targets {', '.join(r['targets'])} at preset {r['preset']}: {r['jobs']} jobs over the tables "
             f"({r['distinct_jobs']} distinct)",
             f"{'stage kind':<16} {'naive':>7} {'shared':>7} {'saved':>7}"]
    for kind in sorted(r["naive"]):
        n, s = r["naive"][kind], r["shared"].get(kind, 0)
        lines.append(f"{kind:<16} {n:>7} {s:>7} {n - s:>7}")
    st, tr, im = r["stages"], r["trainings"], r["images"]
    lines.append(f"{'all stages':<16} {st['naive']:>7} {st['shared']:>7} {st['naive'] - st['shared']:>7}")
    saved = 100 * (1 - tr["shared"] / tr["naive"]) if tr["naive"] else 0.0
    lines.append(f"trainings: {tr['naive']} naive -> {tr['shared']} with stage sharing ({saved:.0f} % fewer)")
    if im["naive"]:
        lines.append(f"images processed (estimate, train + eval): {im['naive']:.3g} -> {im['shared']:.3g} "
                     f"({100 * (1 - im['shared'] / im['naive']):.0f} % less)")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--targets", default="all", help="all, or comma-separated target names")
    p.add_argument("--seeds", type=int)
    args = p.parse_args(argv)
    targets = table_names() if args.targets == "all" else args.targets.split(",")
    r = count(targets, args.preset, args.seeds)
    print(render(r))
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
