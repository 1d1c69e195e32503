"""The thin CLI: subcommands with their own --help (defaults, OILWATER_* variables), --version, the old
spellings unchanged, and status's exit code."""

import pytest

from artifact.cli import canonical_argv
from artifact.config import load_preset
from artifact.grid import expand, filter_jobs, load_table
from artifact.store import Store

ONLY = ("--only", "method=jtt", "--only", "dataset=waterbirds", "--only", "attack=dlbd")


def test_old_spellings_are_the_subcommands():
    assert canonical_argv(["table2", "--preset", "tiny"]) == ["run", "table2", "--preset", "tiny"]
    assert canonical_argv(["--preset", "tiny", "table2"]) == ["run", "--preset", "tiny", "table2"]
    assert canonical_argv(["--list"]) == ["list"]
    assert canonical_argv(["check", "table2"]) == ["check", "table2"]


@pytest.mark.parametrize("command", ["run", "check", "status", "report", "list"])
def test_each_subcommand_has_its_help_with_defaults_and_the_environment(run_cli, command):
    with pytest.raises(SystemExit) as done:
        run_cli(command, "--help")
    assert done.value.code == 0


def test_help_shows_defaults_and_variables(capsys):
    from artifact.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "(default: 1)" in out and "OILWATER_PLUGINS" in out and "OILWATER_RESULTS" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("oilwater ")


def test_list_and_the_old_list_flag_print_the_same(run_cli):
    assert run_cli("list") == run_cli("--list")


def test_status_exits_non_zero_when_a_job_failed(run_cli, tmp_path, monkeypatch):
    # No job here was submitted to SLURM, so the queue cannot change a state; answer "no SLURM" instead of
    # asking squeue, which on a machine with the client but no reachable controller waits ~9 s per status.
    monkeypatch.setattr("artifact.jobstate.slurm_queue", lambda: {})
    job = filter_jobs(expand(load_table("table2"), load_preset("smoke")), [o for o in ONLY if o != "--only"])[0]
    store = Store(tmp_path)
    code, out, _ = run_cli("status", "table2", "--preset", "smoke", "--results", str(tmp_path), *ONLY)
    assert code == 0 and "3 pending" in out
    store.job_dir(job.id).mkdir(parents=True)
    (store.job_dir(job.id) / "error.txt").write_text("Traceback ...\nValueError: boom\n")
    code, out, _ = run_cli("status", "table2", "--preset", "smoke", "--results", str(tmp_path), *ONLY)
    assert code == 1 and "1 failed" in out and "ValueError: boom" in out
