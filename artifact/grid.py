"""Table config x preset -> list of jobs (a pure function; no I/O beyond reading the YAML).

A table config names the paper's layout (`rows`, `metrics`) and its grid: a list of blocks, each a
mapping from an axis to a value or a list of values. Axes are `method`, `dataset`, `attack`, `case`,
or a dotted override of a resolved section (`method.upweight`, `attack.rate`, `model.arch`, ...).
The preset supplies everything else; `seed` (the replicate index) is added from the preset's count.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from artifact.attacks import ATTACKS
from artifact.config import DatasetCfg, ModelCfg, Preset, TrainCfg, build, config_dir, read_yaml
from artifact.errors import UserError
from artifact.methods import METHODS
from artifact.store import atomic_write_json, content_hash

CORE_AXES = ("method", "dataset", "attack", "case")
SECTIONS = ("method", "attack", "model", "dataset")
# Metrics measured per ground-truth role (metrics.rate_by_role, STRIP): `<metric>.<role>`.
ROLE_METRICS = ("idnf", "elmf", "entropy", "entropy_sd", "flagged")
ROLES = ("poisons", "lrg1", "lrg2", "hrg")


@dataclass(frozen=True)
class TableCfg:
    name: str
    title: str
    description: str
    rows: tuple[str, ...]
    metrics: tuple[str, ...]
    grid: tuple[dict, ...]
    headers: dict = field(default_factory=dict)  # row or metric -> column header (default: upper-case name)
    kind: str = "table"  # table | figure
    decimals: int = 1  # digits shown in the printed table (the CSV keeps 4)
    # A list metric whose entries become rows (report.collect): {path: elmf_curve, label: iteration, as: elmf}
    # tabulates each EPIC iteration, its `iteration` a row label and its roles under `elmf.`.
    curve: dict = field(default_factory=dict)

    def validate(self):
        if self.curve and set(self.curve) != {"path", "label", "as"}:
            return "curve needs exactly the keys path, label, as"
        if self.curve and self.curve["label"] not in self.rows:
            return f"curve label {self.curve['label']!r} must be one of rows"
        return None


@dataclass(frozen=True)
class Job:
    labels: dict  # the table's axis values for this job, plus seed
    cfg: dict  # the full resolved config (what is hashed)

    @property
    def id(self) -> str:
        return content_hash(self.cfg)

    @property
    def share_key(self) -> str:
        """Jobs that differ only in the case share their preparation stages."""
        return content_hash({k: v for k, v in self.cfg.items() if k != "case"})


def table_names(configs: Path | None = None) -> list[str]:
    # The baseline every reviewer checks first, the paper's tables, its figure, then experiments beyond it.
    kinds = ("baseline", "table", "figure", "ablation")
    names = [p.stem for p in (configs or config_dir()).glob("*.yaml") if p.stem.startswith(kinds)]
    return sorted(names, key=lambda n: ([n.startswith(k) for k in kinds].index(True), len(n), n))


def load_table(name: str, configs: Path | None = None) -> TableCfg:
    configs = configs or config_dir()
    valid = table_names(configs)
    if name not in valid:
        raise UserError(f"unknown target {name!r} (valid: {', '.join([*valid, 'all'])})")
    path = configs / f"{name}.yaml"
    data = read_yaml(path)
    data.setdefault("name", name)
    table = build(TableCfg, data, str(path))
    for i, block in enumerate(table.grid):  # each a mapping: build() checks the type
        for axis in block:
            if axis not in CORE_AXES and axis.split(".")[0] not in SECTIONS:
                raise UserError(f"{path}: grid[{i}].{axis}: unknown axis (valid: {', '.join(CORE_AXES)} "
                                "or a dotted key under method., attack., model., dataset.)")
        for axis in CORE_AXES:
            if axis not in block and not (axis == "case"):
                raise UserError(f"{path}: grid[{i}].{axis}: required axis missing")
        for row in table.rows:
            if row not in block and row not in ("case", "seed", table.curve.get("label")):
                raise UserError(f"{path}: rows: {row!r} is not an axis of grid[{i}] (its axes: {', '.join(block)})")
    for metric in table.metrics:
        root, _, leaf = metric.partition(".")
        if root in ROLE_METRICS and leaf not in ROLES:
            raise UserError(f"{path}: metrics: {metric!r}: {root} is per role (valid: "
                            + ", ".join(f"{root}.{r}" for r in ROLES) + ")")
    return table


def validate_preset(preset: Preset) -> None:
    """Build every section of `preset` on its own, so that an error in the preset file names that file
    (and one in a table's override names the table, in `resolve`)."""
    where = preset.source or "preset"
    for kind, registry, sections in (("methods", METHODS, preset.methods), ("attacks", ATTACKS, preset.attacks)):
        for name, params in (sections or {}).items():
            obj = registry.get_or_fail(name, f"{where}: {kind}")
            params = dict(params or {})
            by_dataset = params.pop("by_dataset", {}) or {}
            build(obj.Params, params, f"{where}: {kind}.{name}")
            for dataset, over in by_dataset.items():
                build(obj.Params, _merge(params, over), f"{where}: {kind}.{name}.by_dataset.{dataset}")
    for name, cfg in preset.datasets.items():
        build(DatasetCfg, cfg, f"{where}: datasets.{name}")
    for name, cfg in preset.model.items():
        build(ModelCfg, cfg, f"{where}: model.{name}")
    if preset.clean_baseline:
        build(TrainCfg, preset.clean_baseline, f"{where}: clean_baseline")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _section(preset_section: dict, name: str, dataset: str) -> dict:
    """A plugin's settings in the preset, merged with its `by_dataset` entry; a plugin the preset does not
    list runs with its `Params()` defaults (so a new method needs no preset entry)."""
    params = dict(preset_section.get(name) or {})
    by_dataset = params.pop("by_dataset", {}) or {}
    return _merge(params, by_dataset.get(dataset, {}))


def _set_dotted(tree: dict, path: list[str], value, where: str) -> None:
    for key in path[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"{where}: cannot set {'.'.join(path)}: {key} is not a section")
        tree = node
    tree[path[-1]] = value


def _raw(point: dict, preset: Preset, where: str) -> dict:
    """One grid point's sections as the preset and the point's dotted overrides give them, before typing."""
    dataset = point["dataset"]
    if dataset not in preset.datasets:
        raise UserError(f"{where}: dataset {dataset!r} has no entry in the preset (valid: {', '.join(preset.datasets)})")
    raw = {
        "dataset": dict(preset.datasets[dataset]),
        "model": dict(preset.model.get(dataset, preset.model.get("default", {}))),
        "attack": {} if point["attack"] == "none" else _section(preset.attacks, point["attack"], dataset),
        "method": _section(preset.methods, point["method"], dataset),
    }
    for axis, value in point.items():
        if "." in axis:
            section, *path = axis.split(".")
            _set_dotted(raw[section], path, value, f"{where}.{axis}")
    return raw


def resolve(point: dict, preset: Preset, where: str) -> dict:
    """One grid point (axes -> single values) -> the full resolved job config."""
    raw = _raw(point, preset, where)
    method = METHODS.get_or_fail(point["method"], f"{where}: method")
    attack = ATTACKS.get_or_fail(point["attack"], f"{where}: attack")
    case = point["case"]  # _points gives every point one
    if case not in method.cases:
        raise UserError(f"{where}: method {point['method']!r} has no case {case!r} (valid: {', '.join(method.cases)})")
    cfg = {
        "dataset": asdict(build(DatasetCfg, raw["dataset"], f"{where}: dataset")),
        "model": build(ModelCfg, raw["model"], f"{where}: model").resolved(),
        "attack": {"name": point["attack"], "params": asdict(build(attack.Params, raw["attack"], f"{where}: attack"))},
        "method": {"name": point["method"], "params": asdict(build(method.Params, raw["method"], f"{where}: method"))},
        "case": case,
        "seed": point["seed"],
    }
    if preset.clean_baseline and getattr(attack, "backdoor", False):  # only then: other presets' hashes stay
        cfg["clean_baseline"] = asdict(build(TrainCfg, preset.clean_baseline, f"{where}: clean_baseline"))
    return json.loads(json.dumps(cfg))  # plain JSON types (tuples as lists): what result.json gives back


def _replace_axis(values, replacement):
    """A preset's replacement of a table axis: a list replaces the values, a mapping maps each one
    (so one block's values are rescaled without adding them to another block)."""
    if not isinstance(replacement, dict):
        return replacement
    values = values if isinstance(values, list) else [values]
    lookup = {str(k): v for k, v in replacement.items()}
    return [lookup.get(str(v), v) for v in values]


def _points(table: TableCfg, preset: Preset, seeds: int | None):
    """(grid point with its seed, where it comes from) of `table` under `preset`, in grid order, seed innermost."""
    n_seeds = seeds if seeds is not None else preset.seeds
    replaced = preset.tables.get(table.name, {}) or {}
    for i, block in enumerate(table.grid):
        block = {**block, **{k: _replace_axis(block[k], v) for k, v in replaced.items() if k in block}}
        axes = list(block)
        values = [v if isinstance(v, list) else [v] for v in block.values()]
        for combo in itertools.product(*values):
            point = dict(zip(axes, combo, strict=True))
            point.setdefault("case", "standard")
            for seed in range(n_seeds):
                yield {**point, "seed": seed}, f"configs/{table.name}.yaml: grid[{i}]"


def expand(table: TableCfg, preset: Preset, seeds: int | None = None) -> list[Job]:
    """All jobs of `table` under `preset`, in grid order, seed innermost (a job listed twice once)."""
    jobs, seen = [], set()
    for point, where in _points(table, preset, seeds):
        job = Job(labels=point, cfg=resolve(point, preset, where))
        if job.id not in seen:
            seen.add(job.id)
            jobs.append(job)
    return jobs


def count(table: TableCfg, preset: Preset, seeds: int | None = None) -> int:
    """How many jobs `expand` gives, without importing a plugin (`--list` imports no torch): the distinct
    untyped configs. It equals `len(expand(...))` unless two points differ only by spelling out a default,
    which tests/test_grid.py rules out for every target and preset."""
    keys = {content_hash({**_raw(p, preset, where), "names": [p["method"], p["attack"]], "case": p["case"],
                          "seed": p["seed"]}) for p, where in _points(table, preset, seeds)}
    return len(keys)


def filter_jobs(jobs: list[Job], only: list[str]) -> list[Job]:
    """Keep jobs whose labels match every `key=value` in `only` (values compared as strings).

    A key no job has, a value no job has, or filters that together match nothing are errors that list
    the valid keys or values: a typo never quietly gives an empty grid."""
    wanted = []
    for item in only:
        if "=" not in item:
            raise UserError(f"--only {item!r}: expected key=value, e.g. --only case=ideal")
        wanted.append(tuple(item.split("=", 1)))
    keys = {k for j in jobs for k in j.labels}
    for k, v in wanted:
        if k not in keys:
            raise UserError(f"--only {k}=...: unknown key (valid: {', '.join(sorted(keys))})")
        values = list(dict.fromkeys(str(j.labels[k]) for j in jobs if k in j.labels))
        if v not in values:
            raise UserError(f"--only {k}={v}: no job has {k} {v!r} (valid: {', '.join(values)})")
    kept = [j for j in jobs if all(str(j.labels.get(k)) == v for k, v in wanted)]
    if not kept:
        raise UserError(f"--only {' --only '.join(only)}: each matches some jobs, but no job matches all of them")
    return kept


def random_init(jobs: list[Job]) -> list[Job]:
    """Jobs whose ImageNet weights file is missing, rewritten to start from random initialisation.

    For `--allow-random-init` (preflight only): `model.pretrained` becomes false in the config, so the job
    id says how the job really ran and such results never pass for pretrained ones; the labels stay, so a
    table's "pretrained" row shows the random-init run.
    """
    from artifact.models import missing_weights

    missing = missing_weights({j.cfg["model"]["arch"] for j in jobs if j.cfg["model"]["pretrained"]})
    return [Job(j.labels, {**j.cfg, "model": {**j.cfg["model"], "pretrained": False}})
            if j.cfg["model"]["pretrained"] and j.cfg["model"]["arch"] in missing else j for j in jobs]


def table_stem(name: str, only: list[str], seeds: int | None, preset_seeds: int) -> str:
    """Output file name of a table: a run filtered with --only or another --seeds gets its own name, so it
    never overwrites the full table."""
    parts = []
    if only:
        parts.append("only." + "+".join(sorted(only)))
    if seeds is not None and seeds != preset_seeds:
        parts.append(f"seeds-{seeds}")
    return ".".join([name, *(re.sub(r"[^A-Za-z0-9._=+-]", "_", p) for p in parts)])


def job_index_path(root: Path, preset_name: str, stem: str) -> Path:
    """Where a run records the jobs of one target (`tables/<preset>/<stem>.jobs.json`)."""
    return Path(root) / "tables" / preset_name / f"{stem}.jobs.json"


def save_job_index(path: Path, jobs: list[Job]) -> None:
    """The jobs a run planned for a target, each with its table labels and full config: the results folder
    describes itself, so `check`, `status` and the report read what was run, whatever the preset or table
    files say now (a changed default would otherwise turn finished results into MISSING)."""
    atomic_write_json(path, {"jobs": [{"id": j.id, "labels": j.labels, "config": j.cfg} for j in jobs]})


def load_job_index(path: Path) -> list[Job] | None:
    """The jobs of `save_job_index`, or None: no index (a results folder of an older run) or a damaged one
    (then the grid is expanded as before)."""
    try:
        entries = json.loads(path.read_text())["jobs"]
        jobs = [Job(e["labels"], e["config"]) for e in entries]
        if all(j.id == e["id"] for j, e in zip(jobs, entries, strict=True)):
            return jobs
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None
