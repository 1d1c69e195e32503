"""Command line: the only place that reads argv; the work is artifact/pipeline.py's.

    python -m artifact run TARGET [options]   (or, as ever: python -m artifact TARGET [options])
    python -m artifact list | check TARGET | status TARGET | report | data {check,synth} ... | --version

Each subcommand has its own `--help` with the defaults and the OILWATER_* variables. The old spellings
(`TARGET ...`, `--list`) are rewritten to `run TARGET ...` and `list`, so README's, CI's and the image's
commands work unchanged. Every bad input ends in one line, `error: ...`, naming the value or file and the
fix (exit 2); never a traceback. Relative paths are relative to the caller's directory ($OILWATER_CWD,
which reproduce.sh sets before it changes into the repository).
"""

from __future__ import annotations

import argparse
import os
import sys

from artifact import pipeline
from artifact.config import PRESETS, ROOT
from artifact.errors import UserError

COMMANDS = ("run", "list", "check", "status", "report", "data")
ENVIRONMENT = """environment:
  OILWATER_PRESET     default --preset          OILWATER_RESULTS    default --results
  OILWATER_DATA_ROOT  default --data-root       OILWATER_EXECUTOR   default --executor
  OILWATER_CONFIGS    a folder of table and preset files in place of configs/
  OILWATER_EXPECTED   a folder of paper numbers and claims in place of expected_results/
  OILWATER_PLUGINS    comma-separated modules or .py files with more methods, attacks or datasets
  OILWATER_CWD        the folder relative paths are read from (reproduce.sh sets it)
  OILWATER_LOG=stderr the jobs' log lines on stderr too (always under SLURM)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, never the usage dump
        raise UserError(f"{message} (see --help)")


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action):
        """The default, where there is one the help does not already name."""
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


TARGETS = "baseline, table1..table12, figure1, ablation-epic, all"
NO_TARGET = f"no target given (valid: {TARGETS}; or --list, check, status, report, data)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _options() -> argparse.ArgumentParser:
    """The options every subcommand that reads a grid shares (a parent parser)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--preset", default=os.environ.get("OILWATER_PRESET", "paper"), choices=PRESETS,
                   help="what fixes data, model, recipes and seeds (README, Presets)")
    p.add_argument("--seeds", type=_positive_int, help="number of seeds (default: the preset's)")
    p.add_argument("--results", default=os.environ.get("OILWATER_RESULTS", str(ROOT / "results")),
                   help="the results folder (jobs/, stages/, tables/, report/)")
    p.add_argument("--data-root", default=os.environ.get("OILWATER_DATA_ROOT", "/data"),
                   help="the real data sets (docs/data.md)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE", help="filter the grid")
    p.add_argument("--real-data", action="store_true",
                   help="read waterbirds/celeba from --data-root with the real loaders, whatever the preset's data")
    p.add_argument("--allow-count-mismatch", action="store_true",
                   help="accept real data whose per-group counts differ from the official release")
    p.add_argument("--allow-random-init", action="store_true",
                   help="preflight only: start from random weights where the ImageNet weights file is missing")
    return p


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=_positive_int, default=1, help="parallel local workers (one GPU each when several)")
    p.add_argument("--threads", type=_positive_int,
                   help="torch CPU threads per worker (default: the cores / --jobs; SLURM: cpus_per_job). "
                        "On the CPU it decides the numbers: stages are cached per thread count")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dry-run", action="store_true", help="show what would run and its cost; touch nothing")
    p.add_argument("--executor", choices=("local", "slurm"), default=os.environ.get("OILWATER_EXECUTOR", "local"),
                   help="local: this machine (--jobs workers); slurm: submitit job arrays (docs/slurm.md)")
    p.add_argument("--cluster-config", help="SLURM settings file (default: configs/cluster.yaml)")
    p.add_argument("--cluster-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configs/cluster.yaml key, e.g. --cluster-set partition=gpu")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reproduce.sh", description="Reproduce the tables of 'Like Oil and Water'.",
                epilog=ENVIRONMENT, formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"oilwater {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    target = {"help": TARGETS}
    run = sub.add_parser("run", parents=[_options()], formatter_class=_Help, epilog=ENVIRONMENT,
                         help="run a target's jobs (the default: `reproduce.sh TARGET` = `reproduce.sh run TARGET`)")
    run.add_argument("target", nargs="?", **target)
    _run_options(run)
    for name, what in (("check", "the checker only, on stored results"),
                       ("status", "done / failed / pending jobs (exit 1 when a job failed)")):
        cmd = sub.add_parser(name, parents=[_options()], formatter_class=_Help, epilog=ENVIRONMENT, help=what)
        cmd.add_argument("target", nargs="?", **target)
    sub.add_parser("report", parents=[_options()], formatter_class=_Help, epilog=ENVIRONMENT,
                   help="the reviewer's report from the results folder; no training")
    sub.add_parser("list", formatter_class=_Help, epilog=ENVIRONMENT, help="the targets, their descriptions and job counts")
    sub.add_parser("data", add_help=False, help="data check | data synth --out DIR (see `data --help`)")
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("oilwater")
    except PackageNotFoundError:
        return "(not installed: run scripts/install.sh)"


def canonical_argv(argv: list[str]) -> list[str]:
    """The old spellings in subcommand form: `TARGET ...` -> `run TARGET ...`, `--list` -> `list`."""
    if not argv:
        return argv
    if "--list" in argv and argv[0] not in COMMANDS:
        return ["list", *(a for a in argv if a != "--list")]
    if argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version"):
        return argv
    return ["run", *argv]


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = _parser().parse_args(canonical_argv(argv))
    if args.command is None:
        raise UserError(NO_TARGET)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["data"]:
            from artifact.data.tools import main as data_main

            return data_main(argv[1:])
        args = parse_args(argv)
        if args.command == "run" and not args.target:
            raise UserError(NO_TARGET)
        return {"run": pipeline.run, "list": pipeline.list_targets, "check": pipeline.check,
                "status": pipeline.status, "report": pipeline.report}[args.command](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `status ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # a full disk, a read-only folder, a vanished mount: one line, never a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}{pipeline.os_hint(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        from artifact.executors.local import Interrupted  # here: --list and check import no torch

        stopped = ""
        if isinstance(e, Interrupted) and e.in_flight:
            stopped = (f" stopped {len(e.in_flight)} job(s) in flight; each training keeps its last finished "
                       "epoch;")
        print(f"interrupted:{stopped} finished jobs are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130
