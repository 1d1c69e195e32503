"""Compare a table's aggregated results with the paper: per-cell numbers and the paper's claims.

Reads only the aggregated table (report.aggregate) and expected_results/; never imports training code.

The rule, in one place:
- a cell PASSES when |ours − paper| <= k * sqrt(sd_paper² + sd_ours²) + floor (sd_ours is the sample std
  over our seeds, 0 with one seed; sd_paper is 0 where the paper gives none, as the JTT paper's Table 1);
  k and floor come from the preset, the floor in percentage points and
  scaled to the metric's own range (`scale`: entropies are in bits, 0–1, so 1 point is 0.01 bit);
- a claim is `left − right OP value` on cell means (OP: >=, <=, >, <, abs<=), per block of rows; a claim
  may name the presets it applies at (`presets`; every absolute threshold in expected_results/ does, as
  tests/test_fidelity.py checks), elsewhere it is SKIPPED;
- every cell must have all its seeds, and every value must be finite and within ± the metric's scale;
- any FAIL or MISSING makes the verdict NOT REPRODUCED and the exit status non-zero.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from artifact.config import PRESETS
from artifact.errors import UserError


def expected_dir() -> Path:
    """expected_results/ of the checkout, or OILWATER_EXPECTED (for tests and a researcher's own claims)."""
    return Path(os.environ.get("OILWATER_EXPECTED", Path(__file__).resolve().parent.parent / "expected_results"))


OPS = {">=": lambda d, v: d >= v, "<=": lambda d, v: d <= v, ">": lambda d, v: d > v, "<": lambda d, v: d < v,
       "abs<=": lambda d, v: abs(d) <= v}


@dataclass
class Verdict:
    status: str  # PASS | FAIL | MISSING | SKIPPED
    what: str
    detail: str
    # For the reviewer's report (artifact/reviewer_report.py): which section gave it, the cell it
    # judges (row labels and metric, matched as the checker matches them), the claim entry it checks.
    section: str = ""
    cell: dict | None = None
    claim: dict | None = None

    def line(self) -> str:
        return f"{self.status:<7} {self.what}: {self.detail}"


# Metric families not in percent, by the first part of their path; everything else spans 0–100.
SCALES = {"entropy": 1.0}


def scale(metric: str) -> float:
    """The metric's full range: what a percentage point of the preset's floor is a hundredth of."""
    return SCALES.get(metric.split(".")[0], 100.0)


def _norm(v) -> str:
    return str(v).strip().lower()


def _matches(column: pd.Series, v) -> pd.Series:
    """A label filter: a value, `last` (the column's largest value), or {">=": x} / {"<=": x} on numbers."""
    if isinstance(v, dict):
        (op, bound), = v.items()
        num = pd.to_numeric(column, errors="coerce")
        return OPS[op](num, float(bound)) & num.notna()
    if _norm(v) == "last":
        num = pd.to_numeric(column, errors="coerce")
        return num == num.max()
    return column.map(_norm) == _norm(v)


def _select(agg: pd.DataFrame, labels: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=agg.index)
    for k, v in labels.items():
        if k not in agg.columns:
            raise UserError(f"claim refers to unknown column {k!r} (valid: {', '.join(agg.columns)})")
        mask &= _matches(agg[k], v)
    return agg[mask]


def load_expected(table: str, where: Path | None = None, table_cfg=None) -> tuple[pd.DataFrame | None, list[dict]]:
    """The paper's numbers and claims for `table`, validated: a malformed file is a one-line UserError
    naming the file, the line and the fix. With `table_cfg` (grid.TableCfg), every cell and claim must
    also name row labels and metrics of that table's grid (the config's own values, before a preset
    replaces any): a row the grid does not have would silently never be compared."""
    where = where or expected_dir()
    csv, claims = where / f"{table}.csv", where / f"{table}.claims.yaml"
    grid = _grid_cells(table_cfg) if table_cfg is not None else None
    numbers = None
    if csv.is_file():
        _validate_numbers(csv, grid)
        numbers = pd.read_csv(csv)
    items = _read_claims(claims, grid) if claims.is_file() else []
    return numbers, items


def _key(value) -> str:
    """A label as the checker compares it: numbers by value (40 = 40.0), text case-insensitively."""
    if isinstance(value, bool):
        return str(value).lower()
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return _norm(value)


def _grid_cells(table_cfg) -> dict:
    """{"rows": label columns, "metrics": the table's metrics, "values": column -> labels it takes,
    "cells": set of label tuples over the `fixed` columns} of a table config's grid. A curve's label
    column (its values come from the results, report._points) is not fixed: any value is a cell's."""
    import itertools

    rows = list(table_cfg.rows)
    fixed = [r for r in rows if r != table_cfg.curve.get("label")]
    cells = set()
    for block in table_cfg.grid:
        values = [v if isinstance(v, list) else [v] for v in (block.get(r, "standard") for r in fixed)]
        cells.update(tuple(_key(v) for v in combo) for combo in itertools.product(*values))
    return {"rows": rows, "fixed": fixed, "metrics": list(table_cfg.metrics), "cells": cells,
            "values": {r: {c[i] for c in cells} for i, r in enumerate(fixed)}}


def _validate_numbers(csv: Path, grid: dict | None) -> None:
    import csv as csvlib

    text = csv.read_text()
    lines = list(csvlib.reader(text.splitlines()))
    fix = "fix the file (a header: the table's row columns, metric, mean, std; one line per cell)"
    if not [row for row in lines if any(field.strip() for field in row)]:
        raise UserError(f"{csv}: empty; {fix}")
    header = [h.strip() for h in lines[0]]
    missing = [c for c in ("metric", "mean", "std") if c not in header]
    if missing:
        raise UserError(f"{csv}: line 1: no column {missing[0]!r} (header: {','.join(header)}); {fix}")
    labels = [c for c in header if c not in ("metric", "mean", "std")]
    if grid is not None and sorted(labels) != sorted(grid["rows"]):
        raise UserError(f"{csv}: line 1: label columns {','.join(labels)} are not the table's rows "
                        f"{','.join(grid['rows'])}; {fix}")
    seen = set()
    for lineno, row in enumerate(lines[1:], start=2):
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise UserError(f"{csv}: line {lineno}: {len(row)} fields, the header has {len(header)}; {fix}")
        rec = dict(zip(header, (f.strip() for f in row), strict=True))
        for col in ("mean", "std"):
            if rec[col]:
                try:
                    float(rec[col])
                except ValueError:
                    raise UserError(f"{csv}: line {lineno}: {col} {rec[col]!r} is not a number (empty: N/A in the "
                                    "paper)") from None
        key = tuple(_key(rec[c]) for c in labels) + (rec["metric"],)
        if key in seen:
            raise UserError(f"{csv}: line {lineno}: a second line for the same cell; keep one")
        seen.add(key)
        if grid is None:
            continue
        if rec["metric"] not in grid["metrics"]:
            raise UserError(f"{csv}: line {lineno}: metric {rec['metric']!r} is not one of the table's "
                            f"({', '.join(grid['metrics'])})")
        cell = tuple(_key(rec[c]) for c in grid["fixed"])
        if cell not in grid["cells"]:
            shown = " ".join(f"{c}={rec[c]}" for c in grid["fixed"])
            raise UserError(f"{csv}: line {lineno}: no cell {shown} in the table's grid; fix the labels")


CLAIM_KEYS = ("id", "text", "source", "left", "right", "op", "value", "presets", "where", "group_by")


def _read_claims(path: Path, grid: dict | None) -> list[dict]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{at}; fix the syntax") from None
    data = data or {}
    items = data.get("claims", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UserError(f"{path}: expected a mapping with a list under 'claims'")
    extra = [k for k in data if k != "claims"]  # a misspelled 'claims' would check nothing
    if extra:
        raise UserError(f"{path}: unknown key {extra[0]!r} (the file has one key, claims)")
    for i, c in enumerate(items):
        cid = c.get("id", f"#{i + 1}") if isinstance(c, dict) else f"#{i + 1}"
        what = f"{path}: claim {cid}"
        if not isinstance(c, dict):
            raise UserError(f"{what}: expected a mapping")
        missing = {"id", "text", "left", "op", "value"} - set(c)
        if missing or c["op"] not in OPS:
            raise UserError(f"{what}: needs id, text, left, op ({', '.join(OPS)}), value")
        unknown = [k for k in c if k not in CLAIM_KEYS]  # a misspelled group_by would judge every row at once
        if unknown:
            raise UserError(f"{what}: unknown key {unknown[0]!r} (valid: {', '.join(CLAIM_KEYS)})")
        if isinstance(c["value"], bool) or not isinstance(c["value"], int | float):
            raise UserError(f"{what}: value {c['value']!r} is not a number")
        bad = [p for p in c.get("presets", []) if p not in PRESETS]
        if bad:
            raise UserError(f"{what}: unknown preset {bad[0]!r} in presets (valid: {', '.join(PRESETS)})")
        sides = {"left": c["left"], **({"right": c["right"]} if c.get("right") is not None else {})}
        for name, side in sides.items():
            if not isinstance(side, dict) or "metric" not in side:
                raise UserError(f"{what}: {name} must be a mapping with a metric, e.g. {{case: ideal, metric: asr}}")
        if not isinstance(c.get("where", {}), dict):
            raise UserError(f"{what}: where must be a mapping of row column -> value")
        group_by = c.get("group_by", [])
        if not isinstance(group_by, list):
            raise UserError(f"{what}: group_by must be a list of row columns")
        if grid is not None:
            _check_claim_labels(what, c, sides, group_by, grid)
    return items


def _check_claim_labels(what: str, c: dict, sides: dict, group_by: list, grid: dict) -> None:
    """Every column a claim names is a row column of the table, every value one its grid has."""
    for col in group_by:
        if col not in grid["rows"]:
            raise UserError(f"{what}: group_by {col!r} is not a row column (valid: {', '.join(grid['rows'])})")
    for part, mapping in (("where", c.get("where", {})), *sides.items()):
        for col, value in mapping.items():
            if col == "metric" and part != "where":
                if value not in grid["metrics"]:
                    raise UserError(f"{what}: {part}.metric {value!r} is not one of the table's "
                                    f"({', '.join(grid['metrics'])})")
            elif col not in grid["rows"]:
                raise UserError(f"{what}: {part}.{col}: not a row column (valid: {', '.join(grid['rows'])})")
            elif isinstance(value, dict):  # a bound on a numeric label, {">=": x} (_matches)
                if len(value) != 1 or next(iter(value)) not in OPS:
                    raise UserError(f"{what}: {part}.{col}: a bound is one {{OP: number}} ({', '.join(OPS)})")
            elif _norm(value) != "last" and col in grid["values"] and _key(value) not in grid["values"][col]:
                raise UserError(f"{what}: {part}.{col}: {value!r} is in no row of the table's grid")


def _row_columns(agg: pd.DataFrame) -> list[str]:
    """The row-label columns of an aggregate: those before `metric` (report.aggregate's layout)."""
    return list(agg.columns)[: list(agg.columns).index("metric")]


def sanity(agg: pd.DataFrame) -> list[Verdict]:
    """Every cell has all its seeds and a finite value within [-100, 100]."""
    out = []
    for r in agg.itertuples():
        if getattr(r, "na", False) and r.n >= r.n_expected:
            continue  # absent by design (n/a), e.g. LRG-2 on CelebA
        values = r[1 : 1 + len(_row_columns(agg))]  # dotted names: by position
        what = " ".join(str(v) for v in values) + f" {r.metric}"
        cell = {**dict(zip(_row_columns(agg), values, strict=True)), "metric": r.metric}
        if r.n < r.n_expected:
            out.append(Verdict("MISSING", what, f"{r.n}/{r.n_expected} seeds finished", cell=cell))
        elif not (math.isfinite(r.mean) and -scale(r.metric) <= r.mean <= scale(r.metric)):
            unit = "a percentage" if scale(r.metric) == 100 else f"within ±{scale(r.metric):g}"
            out.append(Verdict("FAIL", what, f"value {r.mean} is not {unit}", cell=cell))
    ranges = sorted({scale(m) for m in agg["metric"]}) if len(agg) else [100.0]
    within = "[-100, 100]" if ranges == [100.0] else "each metric's range (entropies ±1 bit, the rest ±100)"
    return out or [Verdict("PASS", "all cells", f"{len(agg)} cells complete, finite and within {within}")]


def check_numbers(agg: pd.DataFrame, expected: pd.DataFrame, k: float, floor: float,
                  filtered: bool = False) -> list[Verdict]:
    label_cols = [c for c in expected.columns if c not in ("metric", "mean", "std")]
    out = []
    for e in expected.to_dict("records"):  # records, not namedtuples: label columns may be dotted
        labels = {c: e[c] for c in label_cols}
        key = {**labels, "metric": e["metric"]}
        cell = _select(agg, key)
        what = " ".join(str(v) for v in labels.values()) + f" {e['metric']}"
        if math.isnan(e["mean"]):
            out.append(Verdict("SKIPPED", what, "N/A in the paper", cell=key))
            continue
        if cell.empty and filtered:
            out.append(Verdict("SKIPPED", what, "not in the filtered grid (--only)", cell=key))
            continue
        if cell.empty or cell.iloc[0]["n"] == 0:
            out.append(Verdict("MISSING", what, "no result", cell=key))
            continue
        ours, sd = float(cell.iloc[0]["mean"]), float(cell.iloc[0]["std"])
        sd = 0.0 if math.isnan(sd) else sd
        paper_sd = 0.0 if math.isnan(e["std"]) else e["std"]  # a paper that gives no sd (the JTT paper's Table 1)
        tol = k * math.hypot(paper_sd, sd) + floor * scale(e["metric"]) / 100
        delta = abs(ours - e["mean"])
        status = "PASS" if delta <= tol else "FAIL"
        d = 1 if scale(e["metric"]) == 100 else 3  # decimals: entropies in bits need three
        theirs = f"{e['mean']:.{d}f} ± {e['std']:.{d}f}" if not math.isnan(e["std"]) else f"{e['mean']:.{d}f} (no sd)"
        out.append(Verdict(status, what, f"ours {ours:.{d}f} ± {sd:.{d}f}, paper {theirs}, "
                                         f"|Δ| {delta:.{d}f} {'<=' if status == 'PASS' else '>'} tol {tol:.{d}f}", cell=key))
    return out


def _cell_mean(agg, where, side) -> float | None:
    spec = dict(side)
    metric = spec.pop("metric")
    cell = _select(agg, {**where, **spec, "metric": metric})
    if len(cell) != 1 or cell.iloc[0]["n"] == 0:
        return None
    return float(cell.iloc[0]["mean"])


def check_claims(agg: pd.DataFrame, claims: list[dict], filtered: bool = False,
                 preset: str | None = None) -> list[Verdict]:
    out = []
    for c in claims:
        if preset is not None and c.get("presets") and preset not in c["presets"]:
            out.append(Verdict("SKIPPED", c["id"], f"a threshold meant for preset(s) {', '.join(c['presets'])}",
                               claim=c))
            continue
        where = c.get("where", {})
        base = _select(agg, where)
        groups = [dict(zip(c["group_by"], g, strict=True)) for g in
                  base[c["group_by"]].drop_duplicates().itertuples(index=False)] if c.get("group_by") else [{}]
        for group in groups:
            scope = {**where, **group}
            what = f"{c['id']} [{' '.join(f'{k}={_show(v)}' for k, v in scope.items())}]"
            left = _cell_mean(agg, scope, c["left"])
            right = _cell_mean(agg, scope, c["right"]) if c.get("right") else 0.0
            if left is None or right is None:
                sides = [c["left"], *([c["right"]] if c.get("right") else [])]
                if filtered and any(_select(agg, {**scope, **side}).empty for side in sides):
                    out.append(Verdict("SKIPPED", what, "its rows are not in the filtered grid (--only)", claim=c))
                else:
                    out.append(Verdict("MISSING", what, f"cells for '{c['text']}' not found", claim=c))
                continue
            d = left - right
            desc = _describe(c)
            ok = OPS[c["op"]](d, c["value"])
            out.append(Verdict("PASS" if ok else "FAIL", what, f"{desc} = {d:.1f} (needs {c['op']} {c['value']})",
                               claim=c))
    return out


def _show(v) -> str:
    return " ".join(f"{op}{bound}" for op, bound in v.items()) if isinstance(v, dict) else str(v)


def _describe(c: dict) -> str:
    def side(s):
        rest = " ".join(str(v) for k, v in s.items() if k != "metric")
        return f"{s['metric'].upper()} {rest}".strip()

    return f"{side(c['left'])} − {side(c['right'])}" if c.get("right") else side(c["left"])


# The quick preset's sanity ranges (shortened schedules: the paper's numbers are not expected, but a
# working pipeline is): per row, on the job metrics below.
RANGE_METRICS = ("wga", "asr", "asr_clean", "pred_min_share")
MIN_SHARE = 1.0  # % of test predictions the least-predicted class must receive (not a constant predictor)
BACKDOOR_GAP = 20.0  # points by which a backdoor's ASR must exceed the clean model's ...
WORKING_ASR = 50.0  # ... in the rows where the paper's own ASR is at least this (the attack works there)
RANGES_RULE = (f"sanity ranges: WGA > 0; least-predicted class >= {MIN_SHARE:g} % of test predictions; "
               f"backdoor ASR >= clean model's + {BACKDOOR_GAP:g} where the paper's ASR >= {WORKING_ASR:g}")


def check_ranges(ranges: pd.DataFrame, rows: list[str], expected: pd.DataFrame | None) -> list[Verdict]:
    """Per row: WGA > 0, predictions not constant, and a backdoor far above a clean model's ASR."""
    out = []
    for key, block in ranges.groupby(rows, sort=False):
        labels = dict(zip(rows, key, strict=True))  # groupby on a list: a tuple even for one column
        means = {r.metric: r.mean for r in block.itertuples() if r.n > 0 and math.isfinite(r.mean)}
        what = " ".join(str(v) for v in labels.values())
        if "wga" in means:
            ok = means["wga"] > 0
            out.append(Verdict("PASS" if ok else "FAIL", f"{what} wga", f"{means['wga']:.1f} (needs > 0)"))
        if "pred_min_share" in means:
            ok = means["pred_min_share"] >= MIN_SHARE
            out.append(Verdict("PASS" if ok else "FAIL", f"{what} predictions",
                               f"least-predicted class gets {means['pred_min_share']:.1f} % (needs >= {MIN_SHARE:g})"))
        if "asr" in means and "asr_clean" in means:
            paper = None
            if expected is not None and set(labels) <= set(expected.columns):
                cell = _select(expected, {**labels, "metric": "asr"})
                paper = float(cell.iloc[0]["mean"]) if len(cell) == 1 else None
            gap = means["asr"] - means["asr_clean"]
            detail = f"ASR {means['asr']:.1f} − clean model's {means['asr_clean']:.1f} = {gap:.1f}"
            if paper is None or math.isnan(paper) or paper < WORKING_ASR:
                shown = "not reported" if paper is None or math.isnan(paper) else f"{paper:.1f}"
                out.append(Verdict("SKIPPED", f"{what} backdoor", f"{detail}; the paper's ASR here is {shown}"))
            else:
                ok = gap >= BACKDOOR_GAP
                out.append(Verdict("PASS" if ok else "FAIL", f"{what} backdoor",
                                   f"{detail} (needs >= {BACKDOOR_GAP:g}; the paper's ASR {paper:.1f})"))
    return out


def run_checks(table: str, agg: pd.DataFrame, check_cfg, preset: str, where: Path | None = None,
               filtered: bool = False, ranges: pd.DataFrame | None = None):
    """All verdicts and the report text; `ok` is False on any FAIL or MISSING.

    With `filtered` (a run restricted by --only), cells and claims whose rows are not in the grid at
    all are SKIPPED instead of MISSING; rows that are in the grid but unfinished stay MISSING.
    `ranges` is the aggregate of RANGE_METRICS over the same rows, read when the preset checks ranges.
    """
    expected, claims = load_expected(table, where)
    seeds = int(agg["n_expected"].max()) if len(agg) else 0
    sections = [("Completeness and sanity", sanity(agg))]
    rule = []
    if check_cfg.numbers and expected is not None:
        sections.append(("Cells vs the paper", check_numbers(agg, expected, check_cfg.k, check_cfg.floor, filtered)))
        rule.append(f"cells within {check_cfg.k:g}·sqrt(sd_paper² + sd_ours²) + {check_cfg.floor:g} pts")
    if check_cfg.ranges and ranges is not None:
        sections.append(("Sanity ranges", check_ranges(ranges, _row_columns(ranges), expected)))
        rule.append(RANGES_RULE)
    if check_cfg.claims and claims:
        sections.append(("The paper's claims", check_claims(agg, claims, filtered, preset)))
        rule.append("the paper's claims")
    if not rule:
        rule.append("completeness and sanity only (this preset is for exercising code paths)")
    elif not check_cfg.numbers:
        rule.append("per-cell numbers not compared at this preset (its data and models differ from the paper's)")
    for title, vs in sections:
        for v in vs:
            v.section = title
    verdicts = [v for _, vs in sections for v in vs]
    counts = {s: sum(v.status == s for v in verdicts) for s in ("PASS", "FAIL", "MISSING")}
    ok = counts["FAIL"] == 0 and counts["MISSING"] == 0
    lines = [f"Checker: {table} (preset {preset}, {seeds} seed(s) per cell)", f"Rule: {'; '.join(rule)}"]
    for title, vs in sections:
        lines.append(f"{title}:")
        lines += [f"  {v.line()}" for v in vs]
    skipped = sum(v.status == "SKIPPED" for v in verdicts)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) + (f", {skipped} SKIPPED" if skipped else "")
    # Only a comparison with the paper can reproduce it; sanity alone (smoke, quick) says so.
    judged = any(title in ("Cells vs the paper", "The paper's claims") for title, _ in sections)
    words = ("REPRODUCED", "NOT REPRODUCED") if judged else ("SANE (no paper number or claim checked)", "NOT SANE")
    lines.append(f"Summary: {summary} -> {words[0] if ok else words[1]}")
    return ok, "\n".join(lines), verdicts
