"""Results -> tables: mean ± std over seeds (ddof = 1), in the paper's layout, as Markdown and CSV.

Tables are always rebuilt from the result files; a cell with no finished seed prints MISSING and a
partial one says how many seeds it has.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from artifact.errors import UserError
from artifact.store import atomic_write_text

CATEGORICAL = ("method", "dataset", "attack", "case")


_ABSENT = object()


def metric_value(metrics: dict, path: str, default=None):
    node = metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _points(table, result) -> list[tuple[dict, dict]]:
    """(labels, metrics) of each table row one result gives: one, or one per entry of the table's curve.

    An unfinished job of a curve table gives one row labelled "-", so that the table shows it MISSING.
    """
    metrics = result["metrics"] if result else {}
    if not table.curve:
        return [({}, metrics)]
    label, entries = table.curve["label"], metric_value(metrics, table.curve["path"]) or []
    return [({label: e[label]}, {table.curve["as"]: e}) for e in entries] or [({label: "-"}, {})]


def _has(metrics: dict, path: str) -> bool:
    return metric_value(metrics, path, _ABSENT) is not _ABSENT


def check_metric_paths(table, jobs, store) -> None:
    """A metric path of `table` that no finished result has, nor (dotted) its parent, is a typo in the
    table config, not a column of n/a: a UserError naming it and what the results do have. (A dotted path
    whose parent exists, e.g. idnf.lrg2 on CelebA, is absent by design and shows n/a; the role names of
    such paths are checked when the config loads, artifact/grid.py.) Nothing to judge by: no error; nor
    while a method of the table has no finished job yet (GEORGE's `clusters.*` where only JTT ran)."""
    done = {j.id: r for j in jobs if (r := store.load_result(j.id))}
    results = [m for r in done.values() for _, m in _points(table, r)]
    methods = {j.cfg["method"]["name"] for j in jobs}
    if not results or methods != {j.cfg["method"]["name"] for j in jobs if j.id in done}:
        return
    for path in table.metrics:
        parent = path.rsplit(".", 1)[0] if "." in path else None
        if any(_has(m, path) for m in results) or (parent and any(_has(m, parent) for m in results)):
            continue
        have = sorted({k for m in results for k, v in m.items() if isinstance(v, int | float | dict)})
        from artifact.config import config_dir

        raise UserError(f"{config_dir() / (table.name + '.yaml')}: metrics: {path!r} is in none of its "
                        f"{len(results)} finished results (they have: {', '.join(have)}); fix the name")


def collect(table, jobs, store) -> pd.DataFrame:
    """One row per job (per curve entry): its row labels, seed, whether it finished, each metric (NaN when absent)."""
    records = []
    for job in jobs:
        result = store.load_result(job.id)
        for labels, metrics in _points(table, result):
            row = {k: labels[k] if k in labels else job.labels[k] for k in table.rows}
            row["seed"] = job.labels["seed"]
            row["done"] = result is not None
            for m in table.metrics:
                v = metric_value(metrics, m)
                row[m] = float(v) if v is not None else math.nan
            records.append(row)
    return pd.DataFrame.from_records(records, columns=[*table.rows, "seed", "done", *table.metrics])


def aggregate(table, df: pd.DataFrame, n_seeds: int) -> pd.DataFrame:
    """Long format: row labels, metric, mean, std (ddof=1; NaN with one seed), n, n_expected, na.

    `na` marks a metric that every finished seed lacks by design (e.g. LRG-2 on CelebA): shown as n/a.
    """
    out = []
    if df.empty:
        return pd.DataFrame(columns=[*table.rows, "metric", "mean", "std", "n", "n_expected", "na"])
    keys = list(dict.fromkeys(tuple(r) for r in df[list(table.rows)].itertuples(index=False)))
    for key in keys:
        mask = np.logical_and.reduce([df[c] == v for c, v in zip(table.rows, key, strict=True)])
        block = df[mask]
        for m in table.metrics:
            vals = block[m].dropna()
            finished = int(block["done"].sum())
            out.append({
                **dict(zip(table.rows, key, strict=True)),
                "metric": m,
                "mean": float(vals.mean()) if len(vals) else math.nan,
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                "n": finished if not len(vals) else len(vals),
                "n_expected": n_seeds,
                "na": finished > 0 and not len(vals),
            })
    return pd.DataFrame(out)


def fmt_cell(mean: float, std: float, n: int, n_expected: int, na: bool = False, decimals: int = 1) -> str:
    if n == 0:
        return "MISSING"
    if na:
        return "n/a"
    text = f"{mean:.{decimals}f}" if math.isnan(std) else f"{mean:.{decimals}f} ± {std:.{decimals}f}"
    return text if n == n_expected else f"{text} ({n}/{n_expected} seeds)"


def _label(col: str, value) -> str:
    return str(value).upper() if col in CATEGORICAL else str(value)


def layout(table, agg: pd.DataFrame):
    """The paper's row order: (labels shown, repeated leading ones blank; the row's block of agg) per row key."""
    prev = None
    for key, block in agg.groupby(list(table.rows), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        labels = [_label(c, v) for c, v in zip(table.rows, key, strict=True)]
        shown = list(labels)
        if prev is not None:
            for i, (a, b) in enumerate(zip(labels, prev, strict=True)):
                if a != b:
                    break
                shown[i] = ""
        prev = labels
        yield shown, block


def render(table, agg: pd.DataFrame, tablefmt: str = "github") -> str:
    """The paper's layout: one line per row key, repeated leading labels left blank, metrics as columns."""
    lines = []
    for shown, block in layout(table, agg):
        cells = {r.metric: fmt_cell(r.mean, r.std, r.n, r.n_expected, r.na, table.decimals) for r in block.itertuples()}
        lines.append([*shown, *(cells[m] for m in table.metrics)])
    headers = [table.headers.get(c, c.upper()) for c in table.rows + table.metrics]
    return tabulate(lines, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def write_outputs(table, agg: pd.DataFrame, out_dir: Path, preset: str, stem: str | None = None) -> tuple[Path, Path]:
    """tables/<preset>/<stem>.md (title + table) and .csv (the long format the checker reads); `stem` is the
    table's name, or a filtered run's own name for it (cli._stem)."""
    md = out_dir / f"{stem or table.name}.md"
    csv = out_dir / f"{stem or table.name}.csv"
    note = f"Preset `{preset}`; mean ± std over seeds (sample std, ddof = 1)."
    atomic_write_text(md, f"{table.title}\n\n{note}\n\n{render(table, agg)}\n")
    atomic_write_text(csv, agg.to_csv(index=False, float_format="%.4f"))
    return md, csv


@dataclasses.dataclass
class Evaluation:
    """One target's aggregate and the checker's verdicts on it."""

    table: object
    jobs: list
    agg: pd.DataFrame
    ok: bool
    text: str
    verdicts: list


def evaluate(table, jobs, store, preset, preset_name: str, n_seeds: int, filtered: bool = False) -> Evaluation:
    """Aggregate and check a target from its results: what `check` prints and the reviewer's report shows."""
    from artifact import check

    agg = aggregate(table, collect(table, jobs, store), n_seeds)
    ranges = None
    if preset.check.ranges:
        probe = dataclasses.replace(table, metrics=check.RANGE_METRICS)
        ranges = aggregate(probe, collect(probe, jobs, store), n_seeds)
    ok, text, verdicts = check.run_checks(table.name, agg, preset.check, preset_name, filtered=filtered, ranges=ranges)
    return Evaluation(table, jobs, agg, ok, text, verdicts)
