"""Command line: the only place that reads argv and prints for humans.

    python -m artifact TARGET [--preset P] [--seeds N] [--results DIR] [--data-root DIR] [--jobs N]
                              [--only KEY=VALUE ...] [--device D] [--dry-run]
                              [--executor local|slurm] [--cluster-config F] [--cluster-set KEY=VALUE ...]
    python -m artifact --list | check TARGET | status TARGET | report | data {check,synth} ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys

from artifact.config import PRESETS, ROOT, load_preset
from artifact.errors import UserError
from artifact.store import canonical

COMMANDS = ("check", "status", "report", "data")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, never the usage dump
        raise UserError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reproduce.sh", description="Reproduce the tables of 'Like Oil and Water'.")
    p.add_argument("target", nargs="?", help="table1..table12, figure1, all; or check/status TARGET; or report")
    p.add_argument("subtarget", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true", help="list targets with their job counts")
    p.add_argument("--preset", default=os.environ.get("OILWATER_PRESET", "paper"), choices=PRESETS)
    p.add_argument("--seeds", type=int, help="number of seeds (default: the preset's)")
    p.add_argument("--results", default=os.environ.get("OILWATER_RESULTS", str(ROOT / "results")))
    p.add_argument("--data-root", default=os.environ.get("OILWATER_DATA_ROOT", "/data"))
    p.add_argument("--jobs", type=int, default=1, help="parallel local workers (one GPU each when several)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE", help="filter the grid")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dry-run", action="store_true", help="show what would run; touch nothing")
    p.add_argument("--real-data", action="store_true",
                   help="read waterbirds/celeba from --data-root with the real loaders, whatever the preset's data")
    p.add_argument("--allow-count-mismatch", action="store_true",
                   help="accept real data whose per-group counts differ from the official release")
    p.add_argument("--allow-random-init", action="store_true",
                   help="preflight only: start from random weights where the ImageNet weights file is missing")
    p.add_argument("--executor", choices=("local", "slurm"), default=os.environ.get("OILWATER_EXECUTOR", "local"),
                   help="local: this machine (--jobs workers); slurm: submitit job arrays (docs/slurm.md)")
    p.add_argument("--cluster-config", help="SLURM settings file (default: configs/cluster.yaml)")
    p.add_argument("--cluster-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configs/cluster.yaml key, e.g. --cluster-set partition=gpu")
    return p


def git_commit() -> str | None:
    if os.environ.get("OILWATER_GIT_COMMIT"):
        return os.environ["OILWATER_GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _targets(target: str) -> list[str]:
    from artifact.grid import load_table, table_names

    if target == "all":  # the paper's tables and figure; ablations go beyond the paper and are run by name
        return [n for n in table_names() if not n.startswith("ablation")]
    load_table(target)  # validates the name
    return [target]


def _jobs(name: str, preset, args):
    from artifact.grid import expand, filter_jobs, load_table

    table = load_table(name)
    jobs = filter_jobs(expand(table, preset, args.seeds), args.only)
    if getattr(args, "allow_random_init", False):
        from artifact.grid import random_init

        jobs = random_init(jobs)
    return table, jobs


def cmd_list(args) -> int:
    from artifact.grid import expand, load_table, table_names

    paper, tiny = load_preset("paper"), load_preset("tiny")
    rows = []
    for name in table_names():
        try:
            t = load_table(name)
            rows.append(f"  {name:<9} {len(expand(t, paper)):>4} jobs (paper) {len(expand(t, tiny)):>4} (tiny)  "
                        f"{t.description}")
        except UserError as e:  # one broken config must not hide the others
            rows.append(f"  {name:<9} config error: {e}")
    print("Targets (all = every target):")
    print("\n".join(rows))
    return 0


def _summaries(names, preset, args, store) -> bool:
    """Aggregate, print and check every table in `names`; True when all reproduce."""
    from artifact import report

    ok_all = True
    out_dir = store.root / "tables" / args.preset
    for name in names:
        table, jobs = _jobs(name, preset, args)
        n_seeds = args.seeds if args.seeds is not None else preset.seeds
        ev = report.evaluate(table, jobs, store, preset, args.preset, n_seeds, filtered=bool(args.only))
        agg, ok, text = ev.agg, ev.ok, ev.text
        md, _ = report.write_outputs(table, agg, out_dir, args.preset)
        if table.kind == "figure":
            from artifact import figures

            print(f"figure: {figures.render(table, jobs, store, out_dir)}")
        print(f"\n{table.title}\n(preset {args.preset}; mean ± std over seeds, ddof=1)\n")
        print(report.render(table, agg))
        from artifact.store import atomic_write_text

        atomic_write_text(out_dir / f"{name}.check.txt", text + "\n")
        print(f"\n{text}\n(written: {md}, {md.with_suffix('.csv')}, {out_dir / (name + '.check.txt')})")
        ok_all &= ok
    return ok_all


def _preset(args):
    if getattr(args, "allow_random_init", False) and args.preset != "preflight":
        raise UserError(f"--allow-random-init is for --preset preflight only; preset {args.preset} runs from the "
                        "ImageNet weights: download them (docs/data.md) and drop the flag")
    preset = load_preset(args.preset)
    if getattr(args, "real_data", False):  # e.g. a smoke run on files in the real layouts
        preset = dataclasses.replace(preset, datasets={k: {**v, "name": k} for k, v in preset.datasets.items()})
    if getattr(args, "allow_count_mismatch", False):
        datasets = {k: {**v, "allow_count_mismatch": True} for k, v in preset.datasets.items()}
        preset = dataclasses.replace(preset, datasets=datasets)
    return preset


def preflight(jobs, data_root: str) -> None:
    """Fail in one line before launching anything: missing weights, missing or malformed data.

    Loading a real dataset here also builds its decoded-image cache once, which the workers then map.
    """
    from artifact.config import DatasetCfg, ModelCfg, build
    from artifact.data import load_dataset
    from artifact.models import WEIGHT_FILES, weight_path

    for model in {canonical(j.cfg["model"]) for j in jobs}:
        cfg = build(ModelCfg, json.loads(model), "model")
        if cfg.pretrained and cfg.arch in WEIGHT_FILES and not weight_path(cfg.arch).is_file():
            raise UserError(f"pretrained {cfg.arch} weights not found at {weight_path(cfg.arch)}; download "
                            f"https://download.pytorch.org/models/{WEIGHT_FILES[cfg.arch]} there "
                            "(the Docker image has them), or use --preset tiny "
                            "(--preset preflight: or --allow-random-init)")
    for dataset in {canonical(j.cfg["dataset"]) for j in jobs}:
        cfg = build(DatasetCfg, json.loads(dataset), "dataset")
        if not cfg.name.startswith("synth"):
            load_dataset(cfg, data_root)


def random_init_notice(jobs) -> str:
    """The line that says a preflight run starts (or not) from random weights: its results must say so."""
    from artifact.models import missing_weights

    missing = missing_weights({j.cfg["model"]["arch"] for j in jobs})
    if not missing:
        return "--allow-random-init: every ImageNet weights file was found; the jobs start from them"
    where = ", ".join(f"{arch} ({path})" for arch, path in missing.items())
    return (f"--allow-random-init: no ImageNet weights for {where}: those jobs start from RANDOM initialisation "
            "(model.pretrained: false in their configs)")


def cmd_run(args) -> int:
    from artifact.executors.local import run_local
    from artifact.store import Store
    from artifact.train import auto_device

    names = _targets(args.target)
    preset = _preset(args)
    store = Store(args.results)
    jobs, seen = [], set()
    for name in names:
        for j in _jobs(name, preset, args)[1]:
            if j.id not in seen:
                seen.add(j.id)
                jobs.append(j)
    done = sum(store.is_done(j.id) for j in jobs)
    if args.allow_random_init:
        print(random_init_notice(jobs), file=sys.stderr)
    if args.dry_run:
        from artifact.cost import plan

        print(f"{args.target} (preset {args.preset}): {len(jobs)} jobs, {done} done, {len(jobs) - done} to run; "
              f"results in {store.root}")
        print("\n".join(plan({name: _jobs(name, preset, args)[1] for name in names}, store)))
        return 0
    data_root = args.data_root
    preflight([j for j in jobs if not store.is_done(j.id)], data_root)
    if args.executor == "slurm":
        from artifact.executors.slurm import load_cluster, run_slurm

        print(f"{args.target}: {len(jobs)} jobs at preset {args.preset} ({done} already done) on SLURM; "
              f"results in {store.root}", file=sys.stderr)
        # The device is resolved inside each task (auto: the task's GPU if it has one).
        statuses = run_slurm(jobs, store, {"device": args.device, "threads": 0},
                             load_cluster(args.cluster_config, args.cluster_set), data_root, git_commit())
        if statuses is None:
            print(f"submitted; follow with `reproduce.sh status {args.target}`, then `reproduce.sh check {args.target}`",
                  file=sys.stderr)
            return 0
        return _finish(names, preset, args, store, statuses)
    device = auto_device() if args.device == "auto" else args.device
    from artifact.gpu import cpu_notice, device_report, usage_line

    for line in (device_report(), cpu_notice() if args.device == "auto" else None, usage_line(device)):
        if line:
            print(line, file=sys.stderr)
    rt = {"device": device, "deterministic": not device.startswith("cuda"), "threads": 0}
    print(f"{args.target}: {len(jobs)} jobs at preset {args.preset} ({done} already done) on {device}, "
          f"{args.jobs} worker(s); results in {store.root}", file=sys.stderr)
    statuses = run_local(jobs, store, rt, args.jobs, data_root, git_commit())
    return _finish(names, preset, args, store, statuses)


def _finish(names, preset, args, store, statuses) -> int:
    failed = [s for s in statuses if s["status"] == "failed"]
    ok = _summaries(names, preset, args, store)
    for s in failed:
        print(f"FAILED {s['job']}: {s['error']} (log: {s.get('log')})", file=sys.stderr)
    if args.target == "all":
        cmd_report(args)
    return 0 if ok and not failed else 1


def cmd_report(args) -> int:
    """The reviewer's report (artifact/reviewer_report.py) from the results folder; no training."""
    from artifact.reviewer_report import write_report

    path = write_report(args.results, args.preset, args.seeds, args.only,
                        getattr(args, "allow_random_init", False), _preset(args))  # the run's own jobs
    print(f"reviewer's report: {path}")
    return 0


def cmd_check(args) -> int:
    from artifact.store import Store

    if not args.subtarget:
        raise UserError("check needs a target, e.g. reproduce.sh check table2")
    args.target = args.subtarget
    return 0 if _summaries(_targets(args.target), _preset(args), args, Store(args.results)) else 1


def cmd_status(args) -> int:
    from artifact.executors.local import describe
    from artifact.jobstate import STATES, job_state, slurm_queue
    from artifact.store import Store

    if not args.subtarget:
        raise UserError("status needs a target, e.g. reproduce.sh status table2")
    store = Store(args.results)
    preset = _preset(args)
    queue = slurm_queue()
    if queue is None:
        print("(squeue did not answer: SLURM tasks are shown by their markers only)", file=sys.stderr)
    for name in _targets(args.subtarget):
        _, jobs = _jobs(name, preset, args)
        counts, lines = dict.fromkeys(STATES, 0), []
        for j in jobs:
            state = job_state(store, j.id, queue or {})
            counts[state.name] += 1
            lines.append(f"  {state.name:<11} {j.id}  {describe(j)}  {state.detail}".rstrip()
                         + (f" (log: {state.log})" if state.log else ""))
        print(f"{name} (preset {args.preset}): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["data"]:
            from artifact.data.tools import main as data_main

            return data_main(argv[1:])
        args = _parser().parse_args(argv)
        if args.list:
            return cmd_list(args)
        if not args.target:
            raise UserError("no target given (valid: table1..table12, figure1, all, --list, check, status, report, data)")
        if args.target in ("check", "status", "report"):
            return {"check": cmd_check, "status": cmd_status, "report": cmd_report}[args.target](args)
        if args.subtarget:
            raise UserError(f"unexpected argument {args.subtarget!r} after target {args.target!r}")
        return cmd_run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished jobs are kept; rerun the same command to finish the rest", file=sys.stderr)
        return 130
