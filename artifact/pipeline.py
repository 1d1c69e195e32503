"""The pipeline behind the command line: plan (targets -> jobs), preflight, run (an executor), summarize.

Each entry point takes the run's options (`args`: the CLI's parsed arguments, or any object with the same
attributes) and returns an exit status: `run` (a target, or its `--dry-run` plan), `check` (the checker on
stored results), `status` (done / failed / pending jobs; non-zero when a job failed), `report` (the
reviewer's report), `list_targets`. Nothing here reads argv; everything it prints is for humans.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from artifact.config import ROOT, load_preset, user_path
from artifact.errors import UserError, warn
from artifact.store import canonical


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


def targets(target: str) -> list[str]:
    from artifact.grid import load_table, table_names

    if target == "all":  # the paper's tables and figure; ablations go beyond the paper and are run by name
        return [n for n in table_names() if not n.startswith("ablation")]
    load_table(target)  # validates the name
    return [target]


def _jobs(name: str, preset, args, results: Path | None = None):
    """(table, its jobs after --only). With target `all`, a table that --only excludes has no jobs. With
    `results`, the jobs a run of this target recorded there (grid.save_job_index), where it did."""
    from artifact.grid import expand, filter_jobs, job_index_path, load_job_index, load_table

    table = load_table(name)
    if results is not None:
        recorded = load_job_index(job_index_path(results, args.preset, _stem(name, preset, args)))
        if recorded is not None:
            return table, recorded
    try:
        jobs = filter_jobs(expand(table, preset, args.seeds), args.only)
    except UserError:
        if args.target == "all":
            return table, []
        raise
    if getattr(args, "allow_random_init", False):
        from artifact.grid import random_init

        jobs = random_init(jobs)
    return table, jobs


def _selected(names, preset, args) -> list[str]:
    """The targets that have jobs under --only; an --only that matches nothing anywhere is an error."""
    kept = [n for n in names if _jobs(n, preset, args)[1]]
    if not kept:  # only with `all`: each table skipped itself; the first one's reason
        from artifact.grid import expand, filter_jobs, load_table

        filter_jobs(expand(load_table(names[0]), preset, args.seeds), args.only)
        raise UserError(f"--only {' --only '.join(args.only)}: no job of any target matches")
    return kept


def _results(args, mode: str) -> Path:
    """--results, checked: `write` (a run: created if missing, must be writable), `read` (check, status:
    must exist), `plan` (--dry-run: may be absent; touched never)."""
    root = user_path(args.results)
    if root.exists() and not root.is_dir():
        raise UserError(f"--results {root}: a file, not a folder; pass a folder (a run creates it)")
    if mode == "read" and not root.is_dir():
        raise UserError(f"--results {root}: no such folder; pass the folder a run wrote (jobs/, stages/, "
                        "tables/), or run the target first")
    if mode == "write":
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=root):
                pass
        except OSError as e:
            raise UserError(f"--results {root}: cannot write there ({e.strerror}); fix its permissions "
                            "or pass another folder") from None
    return root


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _device(args) -> str:
    """--device, validated before anything runs: a GPU asked for must be visible (locally)."""
    device = args.device.strip().lower()
    if not DEVICE.fullmatch(device):
        raise UserError(f"--device {args.device!r}: unknown device (valid: auto, cpu, cuda, cuda:N)")
    if args.executor == "slurm":
        return device  # resolved inside each task, on its node
    import torch

    from artifact.gpu import _probe_cuda
    from artifact.train import auto_device

    if device == "auto":
        return auto_device()
    if device.startswith("cuda"):
        available, reason = _probe_cuda()
        if not available:
            raise UserError(f"--device {device}: no GPU visible here" + (f" ({reason})" if reason else "")
                            + "; use --device cpu (or auto)")
        n = torch.cuda.device_count()
        if ":" in device and int(device.split(":")[1]) >= n:
            raise UserError(f"--device {device}: only {n} GPU(s) visible (valid: cuda, "
                            + ", ".join(f"cuda:{i}" for i in range(n)) + ")")
    return device


def _stem(name: str, preset, args) -> str:
    from artifact.grid import table_stem

    return table_stem(name, args.only, args.seeds, preset.seeds)


def _validate_expected(names) -> None:
    """expected_results/ of each target parses and names cells of its grid (before anything runs)."""
    from artifact import check
    from artifact.grid import load_table

    for name in names:
        check.load_expected(name, table_cfg=load_table(name))


def list_targets(args) -> int:
    from artifact.grid import count, load_table, table_names

    paper, tiny = load_preset("paper", validate=False), load_preset("tiny", validate=False)  # no plugin imported
    rows = []
    for name in table_names():
        try:
            t = load_table(name)
            rows.append(f"  {name:<9} {count(t, paper):>4} jobs (paper) {count(t, tiny):>4} (tiny)  "
                        f"{t.description}")
        except UserError as e:  # one broken config must not hide the others
            rows.append(f"  {name:<9} config error: {e}")
    print("Targets (all = every target):")
    print("\n".join(rows))
    return 0


def _summaries(names, preset, args, store) -> bool:
    """Aggregate, print and check every table in `names`; True when all reproduce (and were written)."""
    from artifact import check, report

    ok_all = True
    out_dir = store.root / "tables" / args.preset
    for name in names:
        table, jobs = _jobs(name, preset, args, store.root)
        if not jobs:
            continue
        n_seeds = args.seeds if args.seeds is not None else preset.seeds
        check.load_expected(name, table_cfg=table)
        for path, why in store.damaged(j.id for j in jobs):
            warn(f"{path} {why}; its cell counts as missing (a run of the target sets it aside and reruns "
                 "the job)")
        report.check_metric_paths(table, jobs, store)
        ev = report.evaluate(table, jobs, store, preset, args.preset, n_seeds, filtered=bool(args.only))
        agg, ok, text = ev.agg, ev.ok, ev.text
        stem = _stem(name, preset, args)
        writes = _Writes()
        with writes.attempt():
            writes.done.extend(report.write_outputs(table, agg, out_dir, args.preset, stem))
        if table.kind == "figure":
            from artifact import figures

            with writes.attempt():
                print(f"figure: {figures.render(table, jobs, store, out_dir, stem)}")
        print(f"\n{table.title}\n(preset {args.preset}; mean ± std over seeds, ddof=1)\n")
        print(report.render(table, agg))
        from artifact.store import atomic_write_text

        with writes.attempt():
            atomic_write_text(out_dir / f"{stem}.check.txt", text + "\n")
            writes.done.append(out_dir / f"{stem}.check.txt")
        print(f"\n{text}\n(written: {', '.join(map(str, writes.done)) or 'nothing'})")
        ok_all &= ok and writes.ok
    return ok_all


class _Writes:
    """The table files of one target: a full disk or a read-only folder is one line, not the end of the
    run (the table and verdicts still print, and the FAILED lines after them)."""

    def __init__(self):
        self.ok, self.done = True, []

    @contextlib.contextmanager
    def attempt(self):
        try:
            yield
        except OSError as e:
            self.ok = False
            print(f"error: cannot write {e.filename or 'the tables'}: {e.strerror}" + os_hint(e), file=sys.stderr)


def os_hint(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return " (free space on that disk, then rerun the same command: finished jobs are kept)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return " (not writable: fix its permissions, or pass another --results)"
    return ""


def run_preset(args):
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
    """Fail in one line before launching anything: missing or corrupt weights, missing or malformed data.

    Loading a real dataset here also builds its decoded-image cache once, which the workers then map.
    """
    from artifact.config import DatasetCfg, ModelCfg, build
    from artifact.data import load_dataset
    from artifact.models import WEIGHT_FILES, check_weights

    for model in {canonical(j.cfg["model"]) for j in jobs}:
        cfg = build(ModelCfg, json.loads(model), "model")
        if cfg.pretrained and cfg.arch in WEIGHT_FILES:
            check_weights(cfg.arch)  # present, and its sha256 the one in its name
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


def _all_jobs(names, preset, args) -> list:
    jobs, seen = [], set()
    for name in names:
        for j in _jobs(name, preset, args)[1]:
            if j.id not in seen:
                seen.add(j.id)
                jobs.append(j)
    return jobs


def run(args) -> int:
    """A run of `args.target`: plan the jobs, preflight them, run them on the chosen executor, summarize."""
    from artifact.executors import get_executor
    from artifact.executors.local import default_threads
    from artifact.store import Store
    from artifact.train import numerics, runtime_settings

    preset = run_preset(args)
    names = _selected(targets(args.target), preset, args)
    _validate_expected(names)
    device = _device(args)
    if args.executor == "slurm":
        threads = args.threads or 0  # 0: each task's cpus_per_job (SLURM_CPUS_PER_TASK)
    else:
        threads = args.threads or default_threads(device, args.jobs)
    root = _results(args, "plan" if args.dry_run else "write")
    jobs = _all_jobs(names, preset, args)
    if getattr(args, "allow_random_init", False):
        print(random_init_notice(jobs), file=sys.stderr)
    if args.dry_run:
        from artifact.cost import plan

        known = args.executor == "local" or (device == "cpu" and threads)  # SLURM: decided on each node
        store = Store(root, numerics(device, threads) if known else None)
        done = sum(store.is_done(j.id) for j in jobs)
        print(f"{args.target} (preset {args.preset}): {len(jobs)} jobs, {done} done, {len(jobs) - done} to run; "
              f"results in {store.root}")
        workers = args.jobs if args.executor == "local" else 1
        print("\n".join(plan({name: _jobs(name, preset, args)[1] for name in names}, store, workers=workers)))
        return 0
    store = Store(root)
    for line in store.sweep():
        print(f"removed {line}", file=sys.stderr)
    for j in jobs:
        moved = store.set_aside(j.id)
        if moved:
            warn(f"{store.result_path(j.id)} {moved[1]}; moved to {moved[0].name}, the job reruns")
    done = sum(store.is_done(j.id) for j in jobs)
    data_root = str(user_path(args.data_root))
    preflight([j for j in jobs if not store.is_done(j.id)], data_root)
    from artifact.grid import job_index_path, save_job_index

    for name in names:  # the results folder records what this run is made of (check reads it back)
        save_job_index(job_index_path(store.root, args.preset, _stem(name, preset, args)), _jobs(name, preset, args)[1])
    cluster = None
    if args.executor == "slurm":
        from artifact.executors.slurm import load_cluster

        cluster = load_cluster(str(user_path(args.cluster_config)) if args.cluster_config else None, args.cluster_set)
        print(f"{args.target}: {len(jobs)} jobs at preset {args.preset} ({done} already done) on SLURM; "
              f"results in {store.root}", file=sys.stderr)
        rt = {"device": device, "threads": threads}  # the device is resolved inside each task, on its node
    else:
        from artifact.gpu import cpu_notice, device_report, usage_line

        for line in (device_report(), cpu_notice() if args.device == "auto" else None, usage_line(device)):
            if line:
                print(line, file=sys.stderr)
        rt = runtime_settings(device, threads)
        per_worker = f" x {threads} thread(s)" if threads else ""
        print(f"{args.target}: {len(jobs)} jobs at preset {args.preset} ({done} already done) on {device}, "
              f"{args.jobs} worker(s){per_worker}; results in {store.root}", file=sys.stderr)
    statuses = get_executor(args.executor, args.jobs, cluster).run(jobs, store, rt, data_root, git_commit())
    if statuses is None:
        print(f"submitted; follow with `reproduce.sh status {args.target}`, then `reproduce.sh check {args.target}`",
              file=sys.stderr)
        return 0
    return finish(names, preset, args, store, statuses)


def finish(names, preset, args, store, statuses) -> int:
    failed = [s for s in statuses if s["status"] == "failed"]
    ok = False
    try:
        ok = _summaries(names, preset, args, store)
    finally:  # whatever happened to the tables, the failures are said
        for s in failed:
            print(f"FAILED {s['job']}: {s['error']} (log: {s.get('log')})", file=sys.stderr)
    if args.target == "all":
        report(args)
    return 0 if ok and not failed else 1


def report(args) -> int:
    """The reviewer's report (artifact/reviewer_report.py) from the results folder; no training."""
    from artifact.reviewer_report import write_report

    path = write_report(str(user_path(args.results)), args.preset, args.seeds, args.only,
                        getattr(args, "allow_random_init", False), run_preset(args))  # the run's own jobs
    print(f"reviewer's report: {path}")
    return 0


def check(args) -> int:
    """The checker on stored results: 0 when every target reproduces (or is sane, at the sanity presets)."""
    from artifact.store import Store

    if not args.target:
        raise UserError("check needs a target, e.g. reproduce.sh check table2")
    preset = run_preset(args)
    names = _selected(targets(args.target), preset, args)
    return 0 if _summaries(names, preset, args, Store(_results(args, "read"))) else 1


def status(args) -> int:
    """Done / failed / pending jobs per target; 1 when a job failed (its traceback is in its log)."""
    from artifact.executors import describe
    from artifact.jobstate import STATES, job_state, slurm_queue
    from artifact.store import Store

    if not args.target:
        raise UserError("status needs a target, e.g. reproduce.sh status table2")
    preset = run_preset(args)
    names = _selected(targets(args.target), preset, args)
    store = Store(_results(args, "read"))
    queue = slurm_queue()
    if queue is None:
        print("(squeue did not answer: SLURM tasks are shown by their markers only)", file=sys.stderr)
    failed = 0
    for name in names:
        _, jobs = _jobs(name, preset, args, store.root)
        counts, lines = dict.fromkeys(STATES, 0), []
        for j in jobs:
            state = job_state(store, j.id, queue or {})
            counts[state.name] += 1
            lines.append(f"  {state.name:<11} {j.id}  {describe(j)}  {state.detail}".rstrip()
                         + (f" (log: {state.log})" if state.log else ""))
        print(f"{name} (preset {args.preset}): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        print("\n".join(lines))
        failed += counts["failed"]
    return 1 if failed else 0


