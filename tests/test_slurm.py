"""The SLURM executor end to end on the real single-node cluster of tests/slurm/start-cluster.sh.

One run of table2 (smoke, JTT x Waterbirds x DLBD: 3 jobs, final training lengthened) through submitit
job arrays must give the local executor's numbers exactly; one task scancelled in the middle of its
training is reported failed with its log, and a rerun submits only that job, resumes it from its last
finished epoch and leaves the finished jobs' result.json untouched.
Skips when SLURM cannot start here (e.g. not root), except under CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ONLY = ["--only", "method=jtt", "--only", "dataset=waterbirds", "--only", "attack=dlbd"]
# 2 CPUs per task: one task at a time on the 2-CPU node, with the local run's thread count (a CPU run is
# bit-identical for the same number of threads); arrays of at most 2 tasks exercise chunking.
SLURM = ["--executor", "slurm", *[a for kv in ("gpus_per_job=0", "cpus_per_job=2", "mem_gb=2", "poll_s=1",
                                               "time_min=10", "max_array_size=2") for a in ("--cluster-set", kv)]]
FINAL_EPOCHS = 40  # the final training of each job: over 10 s, twice SLURM's KillWait, on an idle machine


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def cluster():
    try:
        proc = subprocess.run(["bash", str(ROOT / "tests/slurm/start-cluster.sh")], capture_output=True, text=True,
                              timeout=600)
        reason = proc.stderr.strip().splitlines()[-1] if proc.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        reason = str(e)
    if reason:
        message = f"SLURM could not start: {reason}"
        if _in_ci():
            pytest.fail(message + " (CI is set: a SLURM test must run there, not skip)")
        pytest.skip(message)


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "artifact", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, **kw)


def _metrics(results: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text())["metrics"] for p in results.glob("jobs/*/result.json")}


def _ideal_job_id(env: dict) -> str:
    """The ideal case trains its own final model (worst shares standard's), so it is the one cancelled."""
    from artifact.config import load_preset
    from artifact.grid import expand, filter_jobs, load_table

    configs = Path(env["OILWATER_CONFIGS"])
    jobs = filter_jobs(expand(load_table("table2", configs), load_preset("smoke", configs)), [*ONLY[1::2], "case=ideal"])
    assert len(jobs) == 1
    return jobs[0].id


def _cancel_while_training(results: Path, proc, ideal: str, timeout: float = 300) -> str:
    """Plain `scancel` of the ideal job's task once its final training has checkpointed an epoch.

    Tasks take both CPUs, so they run one at a time and the only checkpoint present is the ideal job's."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            task = json.loads((results / "jobs" / ideal / "running.json").read_text()).get("slurm")
            partial = next(results.glob("stages/fit/*.partial.pt"), None)
            epoch = torch.load(partial, weights_only=True)["epoch"] if task and partial else -1
        except (OSError, json.JSONDecodeError, RuntimeError, EOFError):
            epoch = -1
        if epoch >= 1:
            subprocess.run(["scancel", task], check=True)
            return task
        time.sleep(0.1)
    raise AssertionError("the ideal job's task was not seen training")


def test_slurm_matches_local_and_a_scancelled_job_is_finished_by_a_rerun(cluster, tmp_path, long_smoke_configs):
    # The final training lasts FINAL_EPOCHS epochs (tens of seconds): a task scancel-ed in it is still training
    # when SLURM's KillWait (5 s on the test cluster) ends. submitit ignores the SIGTERM of a plain scancel, so
    # a task that would finish within those 5 s still writes its result; the two-epoch smoke job did, which
    # made this scenario race.
    env = {**os.environ, **long_smoke_configs(FINAL_EPOCHS)}
    local, remote = tmp_path / "local", tmp_path / "slurm"
    ran = _cli("table2", "--preset", "smoke", "--results", local, *ONLY, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]

    # First SLURM run: the ideal job's task is cancelled mid-training; the others finish and are collected.
    ideal = _ideal_job_id(env)
    cmd = [sys.executable, "-m", "artifact", "table2", "--preset", "smoke", "--results", str(remote), *ONLY, *SLURM]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        task = _cancel_while_training(remote, proc, ideal)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert "submitted 1 stage task(s)" in err and "3 job(s) as array" in err, err[-3000:]
    assert len(err.split("3 job(s) as array ")[1].split(" (")[0].split(", ")) == 2, "3 tasks, arrays of 2: 2 arrays"
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "interrupted" in failed[0] and "_log.err" in failed[0], err[-3000:]
    log = Path(failed[0].split("(log: ")[1].rstrip(")"))
    assert f"oilwater code: {remote / 'slurm' / 'code'}" in log.read_text(), "tasks must run the submitted snapshot"

    status = _cli("status", "table2", "--preset", "smoke", "--results", remote, *ONLY, env=env)
    assert status.returncode == 0 and "2 done" in status.stdout and "1 interrupted" in status.stdout, status.stdout
    assert f"slurm {task} stopped without a result" in status.stdout

    finished = {p: p.stat().st_mtime_ns for p in remote.glob("jobs/*/result.json")}
    assert len(finished) == 2 and not (remote / "jobs" / ideal / "result.json").exists()
    # It was killed inside its training: the epochs it finished are kept for the rerun.
    partial = list(remote.glob("stages/fit/*.partial.pt"))
    assert len(partial) == 1, partial
    done_epochs = torch.load(partial[0], weights_only=True)["epoch"] + 1
    assert 0 < done_epochs < FINAL_EPOCHS

    # Rerun: only the cancelled job is resubmitted, it resumes after its last finished epoch, and
    # finished results are not rewritten.
    rerun = _cli("table2", "--preset", "smoke", "--results", remote, *ONLY, *SLURM, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "(2 already done)" in rerun.stderr and "1 job(s) as array" in rerun.stderr, rerun.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert (remote / "jobs" / ideal / "result.json").is_file() and not partial[0].exists()

    # Same seeds, same numbers: every metric (histories included) and the table itself.
    assert _metrics(remote) == _metrics(local) and len(_metrics(local)) == 3
    table = Path("tables/smoke/table2.only.attack=dlbd+dataset=waterbirds+method=jtt.csv")  # a filtered run's own name
    assert (remote / table).read_text() == (local / table).read_text()
    status = _cli("status", "table2", "--preset", "smoke", "--results", remote, *ONLY, env=env)
    assert "3 done" in status.stdout, status.stdout
