"""The benchmarks run and report their ratios (structure, not speed), and the stage counter follows the
store's real keys."""

import importlib.util
from pathlib import Path

import pytest

from artifact.config import load_preset
from artifact.cost import plan
from artifact.experiments import execute
from artifact.grid import Job, expand, load_table
from artifact.stages import job_stages, sharing
from artifact.store import Store
from artifact.train import numerics

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--size", "32", "--n", "16", "--arch", "smallcnn", "--steps", "1", "--repeats", "1", "--batch", "8",
        "--workers", "0", "--jpeg-px", "48,64", "--threads", "1"]


def test_throughput_reports_both_ratios(tmp_path, capsys):
    r = _load("throughput").main([*TINY, "--no-memory", "--write-table", str(tmp_path / "t.json")])
    assert {"ours_train", "naive_train", "ours_data", "naive_data", "ours_eval"} <= set(r["img_s"])
    rate = r["img_s"]
    for path in ("train", "data"):  # each ratio is ours over naive of the same measurement, as printed
        assert r[f"ratio_{path}"] == pytest.approx(rate[f"ours_{path}"] / rate[f"naive_{path}"], rel=0.01, abs=0.01)
        assert len(r["times_s"][f"ours_{path}"]) == len(r["times_s"][f"naive_{path}"]) == 1  # --repeats 1
    out = capsys.readouterr().out
    assert f"ratio ours/naive {r['ratio_train']}x" in " ".join(out.split())
    assert f"{r['ratio_data']}x" in out
    assert (tmp_path / "t.json").read_text().count("smallcnn@32@cpu") == 1


@pytest.mark.slow
def test_throughput_measures_memory_per_path():
    r = _load("throughput").main(TINY)
    assert r["memory_mb"]["ours"]["rss_mb"] > 0 and r["memory_mb"]["naive"]["rss_mb"] > 0


def _smoke_table2():
    return expand(load_table("table2"), load_preset("smoke"))


def test_identification_is_shared_by_cases_and_the_sa_reference_by_seed():
    jobs = [j for j in _smoke_table2() if j.labels["method"] == "jtt"]
    r = sharing(jobs)
    combos = {(j.labels["dataset"], j.labels["attack"], j.labels["seed"]) for j in jobs}
    assert r["naive"]["jtt-id"] == len(jobs) + sum(j.labels["attack"] == "sa" for j in jobs)  # + SA's reference
    sa_seeds = {j.labels["seed"] for j in jobs if j.labels["attack"] == "sa"}
    assert r["shared"]["jtt-id"] == len(combos) + len(sa_seeds)  # one per poisoned set, one clean per seed
    assert r["shared"]["fit"] == len(jobs) + len(sa_seeds)


def test_counted_keys_are_the_keys_the_store_writes(tmp_path):
    job = next(j for j in _smoke_table2() if j.labels["method"] == "jtt" and j.labels["attack"] == "dlbd")
    job = Job(job.labels, {**job.cfg, "dataset": {**job.cfg["dataset"], "scale": 0.05}})  # seconds, not minutes
    store = Store(tmp_path, numerics("cpu", 1))  # the stage keys of a CPU run with 1 thread
    lines = plan({"table2": [job]}, store, {"smallcnn@32@cpu": {"train_img_s": 100.0, "eval_img_s": 300.0}})
    assert "0/2" in lines[0] and "CPU-h" in lines[0]
    assert execute(job.cfg, str(tmp_path), {"device": "cpu", "threads": 1})["status"] == "done"
    ident = next(s for s in job_stages(job.cfg) if s.kind == "jtt-id")
    assert store.stage_path(ident.kind, ident.key).is_file()
    assert "1 done" in plan({"table2": [job]}, store, {})[0]


def test_dry_run_prints_cost_per_target_and_its_assumptions(run_cli, tmp_path):
    code, out, _ = run_cli("table2", "--preset", "smoke", "--dry-run", "--results", str(tmp_path))
    assert code == 0
    assert "table2" in out and "stages cached" in out and "assumes:" in out
    assert not (tmp_path / "jobs").exists()  # a dry run computes nothing


def test_dry_run_is_priced_from_the_recorded_wall_times_of_finished_jobs(tmp_path, smoke_job):
    """Finished jobs calibrate the throughput table: priced with it, their own stages cost exactly their
    recorded wall time (the job's and its wave-1 shared stages'), and --dry-run says what it was priced from."""
    import json

    from artifact.cost import calibrate, stage_hours
    from artifact.experiments import prepare_job
    from artifact.store import PREPARE_TIMING

    table = {"smallcnn@32@cpu": {"train_img_s": 100.0, "eval_img_s": 300.0}}
    store = Store(tmp_path, numerics("cpu", 1))
    assert "bench/throughput.json alone" in "\n".join(plan({"t": []}, store, table))
    cfg = smoke_job("jtt", "dlbd", scale=0.05)
    assert prepare_job(cfg, str(tmp_path), {"device": "cpu", "threads": 1})["status"] == "done"  # wave 1: jtt-id
    out = execute(cfg, str(tmp_path), {"device": "cpu", "threads": 1})
    assert out["status"] == "done"
    wall_s = store.load_result(out["id"])["timing"]["wall_s"]
    wall_s += json.loads((store.job_dir(out["id"]) / PREPARE_TIMING).read_text())["wall_s"]
    calibrated = calibrate(store, table)
    rate = calibrated["smallcnn@32@cpu"]
    assert rate["recorded_jobs"] == 1 and rate["factor"] > 0
    priced = sum(stage_hours(s, calibrated, "cpu") for s in {s.id: s for s in job_stages(cfg)}.values())
    assert priced * 3600 == pytest.approx(wall_s, rel=1e-6)
    lines = "\n".join(plan({"t": []}, store, table))
    assert "priced from recorded wall times: smallcnn@32@cpu x" in lines and "(1 finished jobs)" in lines


def test_the_wall_time_runs_the_stage_every_job_needs_first_and_shares_the_rest(smoke_job):
    """Two cases of one seed share the identification model: it runs alone (the other worker waits on its
    lock), then their final models run side by side."""
    from artifact.cost import _wall_hours, stage_hours

    table = {"smallcnn@32@cpu": {"train_img_s": 100.0, "eval_img_s": 300.0}}
    cfgs = [smoke_job("jtt", "dlbd"), {**smoke_job("jtt", "dlbd"), "case": "ideal"}]
    per_job = [{s.id: s for s in job_stages(c)} for c in cfgs]
    todo = {k: v for d in per_job for k, v in d.items()}
    (ident,) = set(per_job[0]) & set(per_job[1])
    fits = [stage_hours(s, table, "cpu") for k, s in todo.items() if k != ident]
    expected = stage_hours(todo[ident], table, "cpu") + sum(fits) / 2
    assert _wall_hours(todo, [set(d) for d in per_job], table, 2) == pytest.approx(expected)
    assert _wall_hours(todo, [set(d) for d in per_job], table, 1) == pytest.approx(
        sum(stage_hours(s, table, "cpu") for s in todo.values()))
