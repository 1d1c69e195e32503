"""End to end on the embedded data: `table2 --preset smoke` runs, resumes after a kill, is deterministic."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artifact.config import load_preset
from artifact.grid import expand, load_table

pytestmark = pytest.mark.slow
ONLY = ["--only", "method=jtt", "--only", "dataset=waterbirds", "--only", "attack=dlbd"]


def _cli(results: Path, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "artifact", "table2", "--preset", "smoke", "--results", str(results), *ONLY, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent.parent, start_new_session=True)


def _results(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (root / "jobs").glob("*/result.json")}


def test_smoke_run_resume_and_determinism(tmp_path):
    jobs = [j for j in expand(load_table("table2"), load_preset("smoke"))
            if (j.labels["method"], j.labels["dataset"], j.labels["attack"]) == ("jtt", "waterbirds", "dlbd")]
    # 1. A run killed after its first finished job...
    killed = tmp_path / "killed"
    proc = _cli(killed)
    deadline = time.time() + 300
    while not _results(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    first = _results(killed)
    assert first, "no job finished before the kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    mtimes = {k: (killed / "jobs" / k / "result.json").stat().st_mtime_ns for k in first}
    assert not list((killed / "jobs").glob("*/*.tmp"))  # never half-written
    # ...is finished by a rerun that redoes nothing already done.
    rerun = _cli(killed)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    done = _results(killed)
    assert set(done) == {j.id for j in jobs}
    assert all((killed / "jobs" / k / "result.json").stat().st_mtime_ns == t for k, t in mtimes.items())
    assert "-> SANE" in out and "| JTT" in out
    # 2. The same configs and seeds from scratch give identical numbers on the CPU.
    fresh = tmp_path / "fresh"
    again = _cli(fresh)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    for job_id, result in _results(fresh).items():
        assert result["metrics"] == done[job_id]["metrics"], job_id
    # 3. Each result records its full resolved config, seed, code version and software versions.
    r = next(iter(done.values()))
    assert r["config"] == next(j.cfg for j in jobs if j.id == r["id"])
    assert {"git_commit", "torch", "python", "hostname", "device_name"} <= set(r["env"])
    assert r["seed"] == r["config"]["seed"] and r["timing"]["wall_s"] > 0
    assert r["runtime"]["deterministic"] is True
    # 4. Tables land beside the results as Markdown and CSV, with the checker's verdicts, under the filtered
    # run's own name (the full table2.md is the full grid's).
    tables = killed / "tables" / "smoke"
    stem = "table2.only.attack=dlbd+dataset=waterbirds+method=jtt"
    assert (tables / f"{stem}.md").is_file() and (tables / f"{stem}.csv").is_file()
    assert "Summary:" in (tables / f"{stem}.check.txt").read_text() and not (tables / "table2.md").exists()
