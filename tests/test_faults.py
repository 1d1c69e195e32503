"""Fault injection: a finished smoke store damaged in each way of issue 18 gets a one-line answer naming the
file and the fix, or a correct recovery (the numbers of the undamaged store), never a traceback.

The store is made once (table2, smoke, JTT x Waterbirds x DLBD: 3 jobs); each test damages a copy and runs
the CLI in a subprocess, as a user would (the worker's own warnings go to the subprocess's stderr).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ONLY = ["--only", "method=jtt", "--only", "dataset=waterbirds", "--only", "attack=dlbd"]
THREADS = ["--threads", "1"]  # every run of a test the same numerics (and 1 thread is fastest on a loaded machine)
STEM = "table2.only.attack=dlbd+dataset=waterbirds+method=jtt"  # a filtered run's own table name


def _cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "artifact", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _run(results: Path, *extra, **kw):
    return _cli("table2", "--preset", "smoke", "--results", results, *ONLY, *THREADS, *extra, **kw)


def _check(results: Path, *extra, **kw):
    return _cli("check", "table2", "--preset", "smoke", "--results", results, *ONLY, *extra, **kw)


def _metrics(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())["metrics"] for p in root.glob("jobs/*/result.json")}


def _one_line_errors(err: str) -> None:
    assert "Traceback" not in err and "weights_only=False" not in err, err[-3000:]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "store"
    ran = _run(root)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert len(_metrics(root)) == 3
    return root


@pytest.fixture
def store(finished, tmp_path) -> Path:
    """A fresh copy of the finished store, to damage."""
    dst = tmp_path / "store"
    shutil.copytree(finished, dst)
    return dst


def _rerun_recovers(store: Path, finished: Path) -> str:
    """Rerun the damaged store: it must succeed, say nothing unsafe, and give the undamaged numbers; its stderr."""
    rerun = _run(store)
    _one_line_errors(rerun.stderr)
    assert rerun.returncode == 0 and "-> SANE" in rerun.stdout, rerun.stderr[-3000:]
    assert _metrics(store) == _metrics(finished)
    return rerun.stderr


def _by_case(root: Path) -> dict[str, Path]:
    return {json.loads(p.read_text())["config"]["case"]: p for p in root.glob("jobs/*/result.json")}


# --- 1, 2: a damaged result is never done ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated+empty", "binary+other-job"])
def test_a_damaged_result_is_named_counted_missing_set_aside_and_rerun(finished, store, damage):
    paths = _by_case(store)
    first, second = damage.split("+")
    raw = paths["worst"].read_bytes()
    if first == "truncated":
        paths["worst"].write_bytes(raw[: len(raw) // 2])
        why_worst = "is not valid JSON"
    else:
        paths["worst"].write_bytes(os.urandom(len(raw)))
        why_worst = "is not text"
    if second == "empty":
        paths["ideal"].write_text("{}")
        why_ideal = "carries no job id"
    else:  # the standard job's result copied into the ideal job's folder
        shutil.copy(paths["standard"], paths["ideal"])
        why_ideal = f"holds the result of job {paths['standard'].parent.name}, not of {paths['ideal'].parent.name}"

    checked = _check(store)
    _one_line_errors(checked.stderr)
    assert checked.returncode == 1 and "NOT SANE" in checked.stdout
    assert f"warning: {paths['worst']} {why_worst}" in checked.stderr
    assert f"warning: {paths['ideal']} {why_ideal}" in checked.stderr
    assert "| MISSING" in checked.stdout and "MISSING jtt waterbirds dlbd ideal wga: 0/1 seeds finished" in checked.stdout

    status = _cli("status", "table2", "--preset", "smoke", "--results", store, *ONLY)
    assert status.returncode == 0 and "1 done, 2 damaged" in status.stdout, status.stdout

    err = _rerun_recovers(store, finished)  # the reruns give the undamaged numbers
    assert "(1 already done)" in err
    for case in ("worst", "ideal"):
        assert f"{paths[case]} " in err and "moved to result.json.damaged, the job reruns" in err
        assert paths[case].with_name("result.json.damaged").is_file()


# --- 3: damaged stages and checkpoints ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_stage_is_named_and_recomputed(finished, store):
    stages = sorted(store.glob("stages/*/*.pt"))
    assert stages
    for path in stages:
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    for path in store.glob("jobs/*/result.json"):
        path.unlink()
    err = _rerun_recovers(store, finished)
    for path in stages:
        assert f"warning: stage {path}: truncated or corrupted" in err
    assert err.count("recomputing it (stages are a cache)") == len(stages)


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"", "pickle"])
def test_a_damaged_checkpoint_is_named_and_its_training_restarts(finished, store, content):
    fits = sorted(store.glob("stages/fit/*.pt"))
    assert fits
    if content == "pickle":  # a pickle a safe load refuses: torch would advise weights_only=False
        import pickle

        content = pickle.dumps({"epoch": 0, "model": os.system})
    partials = []
    for path in fits:  # each final training interrupted: its stage missing, its checkpoint damaged
        path.unlink()
        partials.append(path.with_suffix(".partial.pt"))
        partials[-1].write_bytes(content)
    for path in store.glob("jobs/*/result.json"):
        path.unlink()
    err = _rerun_recovers(store, finished)
    for partial in partials:
        assert f"warning: checkpoint {partial}: " in err and not partial.exists()
    assert err.count("removed, this training restarts from its first epoch") == len(partials)


# --- 5: leftovers of killed runs, stale error logs ------------------------------------------------------------


@pytest.mark.slow  # the finished smoke store
def test_leftovers_are_swept_and_live_writes_are_not(store):
    job = next(store.glob("jobs/*/result.json")).parent
    stage = next(store.glob("stages/fit/*.pt"))
    old = time.time() - 3600
    dead = [job / ".result.json.abc123.tmp", stage.parent / f".{stage.name}.def456.tmp"]
    for path in dead:
        path.write_bytes(b"half a file")
        os.utime(path, (old, old))
    fresh = job / ".result.json.new.tmp"  # maybe being written right now
    fresh.write_bytes(b"x")
    locked = job / ".result.json.live.tmp"  # an old write still in progress (its writer holds the lock)
    locked.write_bytes(b"y")
    os.utime(locked, (old, old))
    stale_log = job / "error.txt"
    stale_log.write_text("Traceback ...\nRuntimeError: an earlier attempt\n")
    partial = stage.with_suffix(".partial.pt")  # killed between storing the stage and removing its checkpoint
    partial.write_bytes(b"epoch 1")
    with open(locked, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        rerun = _run(store)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for path in (*dead, stale_log, partial):
        assert not path.exists() and f"removed {path}" in rerun.stderr
    assert fresh.exists() and locked.exists()
    status = _cli("status", "table2", "--preset", "smoke", "--results", store, *ONLY)
    assert "3 done" in status.stdout


# --- 6: Ctrl-C ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_within_seconds_keeps_the_checkpoint_and_the_same_command_resumes(tmp_path, long_smoke_configs):
    env = long_smoke_configs(12)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "artifact", "table2", "--preset", "smoke", "--results", str(results), *ONLY,
           "--only", "case=ideal", *THREADS]
    # As a terminal starts a foreground job: Ctrl-C delivered. A suite started in the background of a
    # non-interactive shell inherits SIGINT ignored, and Python then keeps ignoring it (the run finished, rc 0).
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 400
        while not list(results.glob("stages/fit/*.partial.pt")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert list(results.glob("stages/fit/*.partial.pt")), "the final training never checkpointed"
        t0 = time.time()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        _, err = proc.communicate(timeout=60)
        stopped_s = time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and stopped_s < 10, (stopped_s, err[-3000:])
    assert "interrupted: stopped 1 job(s) in flight" in err and "rerun the same command to resume" in err
    assert "Traceback" not in err and "terminate called" not in err, err[-3000:]
    deadline = time.time() + 10  # the worker is gone too, not finishing its job in the background
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("a process of the interrupted run is still alive")
    partial = next(results.glob("stages/fit/*.partial.pt"))
    import torch

    epochs_kept = torch.load(partial, weights_only=True)["epoch"] + 1
    assert 0 < epochs_kept < 12 and not list(results.glob("jobs/*/result.json"))

    resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert resumed.returncode == 0 and "restarts from its first epoch" not in resumed.stderr, resumed.stderr[-3000:]
    assert not partial.exists()
    fresh = tmp_path / "fresh"  # the same job, never interrupted: the same numbers
    cmd[cmd.index(str(results))] = str(fresh)
    ran = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert _metrics(results) == _metrics(fresh) and len(_metrics(fresh)) == 1


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie nobody has reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _workers(pid: int) -> list[int]:
    """The multiprocessing workers the CLI process `pid` spawned (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers in /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_die_with_the_cli_process(tmp_path, long_smoke_configs, sig):
    """`kill PID` (SIGTERM: the CLI stops its workers and says how to resume) or `kill -9 PID` (the kernel
    stops them: PR_SET_PDEATHSIG) of the CLI alone, not its process group: no worker is left computing."""
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "artifact", "table2", "--preset", "smoke", "--results", str(results), *ONLY,
           "--only", "case=ideal", *THREADS]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **long_smoke_configs(12)}, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.time() + 300
        while not (workers and list(results.glob("stages/*/*.lock"))) and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            workers = workers or _workers(proc.pid)
            time.sleep(0.2)
        assert workers, "no worker process seen computing a stage"
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        deadline = time.time() + 15
        while any(map(_alive, workers)) and time.time() < deadline:
            time.sleep(0.2)
        orphans = [pid for pid in workers if _alive(pid)]
    finally:
        for pid in (proc.pid, *workers):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    err = proc.stderr.read()  # after the kills: an orphan would hold the pipe open
    assert not orphans, f"worker(s) {orphans} outlived the CLI process"
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "rerun the same command to resume" in err, err[-3000:]
        assert "Traceback" not in err, err[-3000:]


# --- 7, 8: the checker's inputs -------------------------------------------------------------------------------


def _expected(tmp_path: Path) -> Path:
    dst = tmp_path / "expected"
    shutil.copytree(ROOT / "expected_results", dst)
    return dst


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("jtt,waterbirds,dlbd,worst,asr,20.9,7.9", "jtt,waterbirds,dlbd,worst,asr,20.9,7.9,x", 1),
     "table2.csv: line 3: 8 fields, the header has 7"),
    (lambda t: t.replace("20.9,7.9", "twenty,7.9", 1), "table2.csv: line 3: mean 'twenty' is not a number"),
    (lambda t: "", "table2.csv: empty"),
    (lambda t: t.replace("jtt,waterbirds,dlbd,worst,asr", "jtt,waterbird,dlbd,worst,asr", 1),
     "table2.csv: line 3: no cell method=jtt dataset=waterbird attack=dlbd case=worst in the table's grid"),
    (lambda t: t.replace("worst,asr,", "worst,asrr,", 1), "table2.csv: line 3: metric 'asrr' is not one of the table's"),
])
def test_a_malformed_expected_csv_is_one_line(run_cli, tmp_path, monkeypatch, edit, message):
    expected = _expected(tmp_path)
    csv = expected / "table2.csv"
    csv.write_text(edit(csv.read_text()))
    monkeypatch.setenv("OILWATER_EXPECTED", str(expected))
    (tmp_path / "results").mkdir()
    for argv in (["check", "table2"], ["table2", "--dry-run"]):  # a run refuses before computing anything
        code, out, err = run_cli(*argv, "--preset", "smoke", "--results", str(tmp_path / "results"))
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "results" / "tables").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("claims:", "claims: [", 1), "table2.claims.yaml: not valid YAML (line"),
    (lambda t: t.replace("value: 5.0", "value: five", 1), "value 'five' is not a number"),
    (lambda t: t.replace("left: {case: standard, metric: asr}", "left: {case: standrd, metric: asr}", 1),
     "left.case: 'standrd' is in no row of the table's grid"),
    (lambda t: t.replace("left: {case: standard, metric: asr}", "left: {case: standard, metric: asrr}", 1),
     "left.metric 'asrr' is not one of the table's"),
])
def test_a_malformed_claims_file_is_one_line(run_cli, tmp_path, monkeypatch, edit, message):
    expected = _expected(tmp_path)
    claims = expected / "table2.claims.yaml"
    text = claims.read_text()
    assert edit(text) != text
    claims.write_text(edit(text))
    monkeypatch.setenv("OILWATER_EXPECTED", str(expected))
    (tmp_path / "results").mkdir()
    code, _, err = run_cli("check", "table2", "--preset", "tiny", "--results", str(tmp_path / "results"))
    assert code == 2 and message in err and err.count("\n") == 1, err


def _configs(tmp_path: Path, edit_table=None, edit_preset=None) -> Path:
    dst = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", dst)
    for path, edit in ((dst / "table2.yaml", edit_table), (dst / "presets" / "smoke.yaml", edit_preset)):
        if edit:
            path.write_text(edit(path.read_text()))
    return dst


@pytest.mark.slow  # the finished smoke store
def test_a_misspelled_metric_is_a_config_error(finished, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OILWATER_CONFIGS", str(_configs(tmp_path, lambda t: t.replace("[wga, asr, acc]",
                                                                                        "[wga, asr, accc]"))))
    code, out, err = run_cli("check", "table2", "--preset", "smoke", "--results", str(finished), *ONLY)
    assert code == 2 and "table2.csv: line 4: metric 'acc' is not one of the table's (wga, asr, accc)" in err, err
    monkeypatch.setenv("OILWATER_EXPECTED", str(tmp_path / "no-expected"))  # a table without paper numbers
    code, out, err = run_cli("check", "table2", "--preset", "smoke", "--results", str(finished), *ONLY)
    assert code == 2 and "table2.yaml: metrics: 'accc' is in none of its 3 finished results" in err, err
    assert "(they have: acc," in err and "SANE" not in out
    monkeypatch.setenv("OILWATER_CONFIGS", str(_configs(tmp_path / "2", lambda t: t.replace(
        "[wga, asr, acc]", "[wga, idnf.lrgg2]"))))
    code, _, err = run_cli("table2", "--preset", "smoke", "--dry-run", "--results", str(tmp_path))
    assert code == 2 and "metrics: 'idnf.lrgg2': idnf is per role (valid: idnf.poisons" in err, err


# --- 9-12, 15: bad flags and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--only", "seed=7"], "error: --only seed=7: no job has seed '7' (valid: 0)"),
    (["--only", "case=bogus"], "error: --only case=bogus: no job has case 'bogus' (valid: worst, standard, ideal)"),
    (["--only", "method=jt"], "error: --only method=jt: no job has method 'jt' (valid: jtt, george)"),
    (["--only", "method=george", "--only", "attack=sa"], "error: --only method=george --only attack=sa: each matches"),
    (["--seeds", "0"], "error: argument --seeds: must be >= 1, got 0"),
    (["--seeds", "-1"], "error: argument --seeds: must be >= 1, got -1"),
    (["--jobs", "0"], "error: argument --jobs: must be >= 1, got 0"),
    (["--jobs", "-3"], "error: argument --jobs: must be >= 1, got -3"),
    (["--threads", "0"], "error: argument --threads: must be >= 1, got 0"),
    (["--device", "tpu"], "error: --device 'tpu': unknown device (valid: auto, cpu, cuda, cuda:N)"),
])
def test_bad_grid_filters_and_flags_name_the_value(run_cli, tmp_path, argv, message):
    for cmd in (["table2", "--dry-run"], ["table2"]):
        code, out, err = run_cli(*cmd, "--preset", "smoke", "--results", str(tmp_path / "r"), *argv)
        assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_target_all_keeps_the_tables_an_only_filter_matches(run_cli, tmp_path):
    code, out, err = run_cli("all", "--preset", "smoke", "--dry-run", "--results", str(tmp_path), "--only", "method=fl")
    assert code == 0 and "table9" in out and "table2 " not in out, err
    code, _, err = run_cli("all", "--preset", "smoke", "--dry-run", "--results", str(tmp_path), "--only", "method=flx")
    assert code == 2 and "no job has method 'flx'" in err and err.count("\n") == 1, err


def test_a_gpu_that_is_not_there_is_refused_at_start(run_cli, tmp_path):
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device, message = ("cuda", "error: --device cuda: no GPU visible here") if n == 0 else \
        (f"cuda:{n}", f"error: --device cuda:{n}: only {n} GPU(s) visible")
    code, _, err = run_cli("table2", "--preset", "smoke", "--device", device, "--results", str(tmp_path / "r"))
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_bad_results_folders_are_one_line(run_cli, tmp_path, monkeypatch):
    # The folders hold no SLURM submission: "no SLURM" instead of squeue (~9 s without a reachable controller).
    monkeypatch.setattr("artifact.jobstate.slurm_queue", lambda: {})
    code, _, err = run_cli("table2", "--preset", "smoke", "--results", str(ROOT / "README.md"))
    assert code == 2 and "--results " in err and "README.md: a file, not a folder" in err, err
    code, _, err = run_cli("table2", "--preset", "smoke", "--results", "/proc/oilwater-results")
    assert code == 2 and "/proc/oilwater-results: cannot write there" in err and err.count("\n") == 1, err
    for command in ("check", "status"):  # nothing to read: said, and the folder is not created
        code, _, err = run_cli(command, "table2", "--preset", "smoke", "--results", str(tmp_path / "none"))
        assert code == 2 and "none: no such folder" in err, err
        assert not (tmp_path / "none").exists()
    monkeypatch.setenv("OILWATER_CWD", str(tmp_path))  # what reproduce.sh passes: the caller's directory
    (tmp_path / "mine").mkdir()
    code, _, err = run_cli("status", "table2", "--preset", "smoke", "--results", "mine")
    assert code == 0, err


@pytest.mark.parametrize("folder", ["mode-555", "/sys"])
def test_a_read_only_results_folder_is_one_line(run_cli, tmp_path, folder):
    """A folder without write permission, and sysfs, where not even root may create a file."""
    if folder == "mode-555":
        if os.geteuid() == 0:
            pytest.skip("root writes into a mode 555 folder (the /sys case covers root)")
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
    code, _, err = run_cli("table2", "--preset", "smoke", "--results", str(folder))
    assert code == 2 and "cannot write there (Permission denied)" in err and err.count("\n") == 1, err


@pytest.mark.slow  # the finished smoke store
def test_a_full_disk_while_writing_tables_is_one_line_and_failures_still_print(finished, run_cli, capsys,
                                                                                 monkeypatch):
    import errno

    from artifact import cli, pipeline, report
    from artifact.store import Store

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(report, "atomic_write_text", full)
    monkeypatch.setattr("artifact.store.atomic_write_text", full)
    code, out, err = run_cli("check", "table2", "--preset", "smoke", "--results", str(finished), *ONLY)
    assert code == 1 and "-> SANE" in out and "Traceback" not in err
    assert f"error: cannot write {finished}/tables/smoke/{STEM}.md: No space left on device (free space" in err
    args = cli.parse_args(["table2", "--preset", "smoke", "--results", str(finished), *ONLY])
    failed = [{"status": "failed", "job": "method=jtt case=ideal", "error": "OSError: disk full", "log": None}]
    assert pipeline.finish(["table2"], pipeline.run_preset(args), args, Store(finished), failed) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "FAILED method=jtt case=ideal: OSError: disk full" in err


@pytest.mark.slow  # the finished smoke store
def test_a_filtered_run_writes_its_own_tables(finished):
    tables = finished / "tables" / "smoke"
    assert (tables / f"{STEM}.md").is_file() and (tables / f"{STEM}.check.txt").is_file()
    assert not (tables / "table2.md").exists()  # the full table's name stays the full table's


def test_an_error_in_a_preset_names_the_preset(run_cli, tmp_path, monkeypatch):
    configs = _configs(tmp_path, edit_preset=lambda t: t.replace("id: {epochs: 1,", "id: {epoch: 1,", 1))
    monkeypatch.setenv("OILWATER_CONFIGS", str(configs))
    code, _, err = run_cli("table2", "--preset", "smoke", "--dry-run", "--results", str(tmp_path))
    assert code == 2 and "presets/smoke.yaml: methods.jtt.id.epoch: unknown key" in err, err
    assert "table2.yaml" not in err


def test_data_synth_into_a_file_and_any_case_layout(run_cli, tmp_path):
    code, _, err = run_cli("data", "synth", "--out", str(ROOT / "README.md"))
    assert code == 2 and "README.md: a file, not a folder" in err and err.count("\n") == 1, err
    code, out, err = run_cli("data", "synth", "--out", str(tmp_path), "--layout", "WILDS", "--scale", "0.005")
    assert code == 0 and "wrote wilds layout" in out, err


# --- 4: corrupt pretrained weights ----------------------------------------------------------------------------


def test_corrupt_pretrained_weights_are_caught_before_the_run(tmp_path, monkeypatch):
    import torch

    from artifact.config import load_preset
    from artifact.errors import UserError
    from artifact.grid import expand, load_table
    from artifact.models import WEIGHT_FILES
    from artifact.pipeline import preflight

    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / WEIGHT_FILES["resnet18"]).write_bytes(b"not the ImageNet weights")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    jobs = expand(load_table("table2"), load_preset("paper"))[:1]
    with pytest.raises(UserError, match=r"resnet18 weights at .*resnet18-f37072fd.pth are corrupt \(their sha256 "
                                        r"does not start with f37072fd.*download https://download.pytorch.org"):
        preflight(jobs, str(tmp_path))


# --- 13: the thread count ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_thread_count_is_set_recorded_and_keys_the_stages(finished, tmp_path):
    import torch

    from artifact.config import load_preset
    from artifact.experiments import execute
    from artifact.grid import expand, load_table

    assert {json.loads(p.read_text())["runtime"]["threads"] for p in finished.glob("jobs/*/result.json")} == {1}
    job = next(j for j in expand(load_table("table2"), load_preset("smoke"))
               if (j.labels["method"], j.labels["attack"], j.labels["case"]) == ("jtt", "dlbd", "ideal"))
    cfg = {**job.cfg, "dataset": {**job.cfg["dataset"], "scale": 0.05}}  # seconds
    root, old = tmp_path / "r", torch.get_num_threads()
    try:
        stages = []
        for threads in (1, 2):  # the same job, its result removed, rerun with another thread count
            assert execute(cfg, str(root), {"device": "cpu", "threads": threads})["status"] == "done"
            result = next(root.glob("jobs/*/result.json"))
            assert json.loads(result.read_text())["runtime"]["threads"] == threads
            result.unlink()
            stages.append(set(root.glob("stages/*/*.pt")))
    finally:
        torch.set_num_threads(old)
    assert stages[0] and stages[0] < stages[1] and len(stages[1]) == 2 * len(stages[0])  # none reused
