"""Job states from the files in a job's folder, the cluster config, and the store under concurrent writers
(what many SLURM array tasks do at once on a shared results folder). Fast; no SLURM needed."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

import pytest

from artifact.errors import UserError
from artifact.executors.slurm import ClusterCfg, load_cluster, max_array_size, snapshot
from artifact.jobstate import MARKER, SUBMISSION, job_state, running
from artifact.store import Store, atomic_write_json

JID = "0123456789abcdef"


def test_states_follow_the_job_folder(tmp_path):
    store = Store(tmp_path)
    assert job_state(store, JID, {}).name == "pending"
    with running(store, JID):
        state = job_state(store, JID, {})
        assert state.name == "running" and f"pid {os.getpid()}" in state.detail
    assert not (store.job_dir(JID) / MARKER).exists()
    # A marker left by a process that no longer exists: the job was interrupted.
    atomic_write_json(store.job_dir(JID) / MARKER, {"host": socket.gethostname(), "pid": 2**22 + 12345})
    assert job_state(store, JID, {}).name == "interrupted"
    (store.job_dir(JID) / MARKER).unlink()
    (store.job_dir(JID) / "error.txt").write_text("Traceback ...\nValueError: bad\n")
    state = job_state(store, JID, {})
    assert state.name == "failed" and state.detail == "ValueError: bad" and state.log.endswith("error.txt")
    store.write_result(JID, {"id": JID, "metrics": {"acc": 90.0, "wga": 70.0}})
    assert job_state(store, JID, {}).name == "done"


def test_slurm_states(tmp_path):
    store = Store(tmp_path)
    atomic_write_json(store.job_dir(JID) / SUBMISSION, {"slurm": "7_2", "log": "/logs/7_2_0_log.err"})
    assert job_state(store, JID, {"7_2": "PENDING"}).name == "queued"
    state = job_state(store, JID, {"7_2": "RUNNING"})
    assert state.name == "running" and "slurm 7_2" in state.detail and state.log == "/logs/7_2_0_log.err"
    state = job_state(store, JID, {})  # left the queue without a result, a traceback or a marker
    assert state.name == "failed" and state.log == "/logs/7_2_0_log.err"
    atomic_write_json(store.job_dir(JID) / MARKER, {"host": "node3", "pid": 1, "slurm": "7_2"})
    assert job_state(store, JID, {"7_2": "RUNNING"}).name == "running"
    assert job_state(store, JID, {}).name == "interrupted"  # scancel, time limit or node failure mid-job


def test_cluster_config_and_overrides(tmp_path):
    cfg = load_cluster(None, [])
    assert cfg == ClusterCfg()  # configs/cluster.yaml documents the defaults, nothing else
    cfg = load_cluster(None, ["partition=gpu", "gpus_per_job=0", "srun_args=[--container-image=x.sqsh]",
                              "sbatch={constraint: a100}"])
    assert (cfg.partition, cfg.gpus_per_job, cfg.srun_args, cfg.sbatch) == ("gpu", 0, ("--container-image=x.sqsh",),
                                                                            {"constraint": "a100"})
    assert max_array_size(ClusterCfg(max_array_size=5)) == 5
    for bad, words in (["gpus=1"], "unknown key"), (["partition"], "KEY=VALUE"), (["cpus_per_job=0"], "> 0"):
        with pytest.raises(UserError, match=words):
            load_cluster(None, bad)


def test_snapshot_is_content_addressed(tmp_path):
    first = snapshot(tmp_path)
    assert (first / "artifact" / "executors" / "slurm.py").is_file() and (first / "configs" / "cluster.yaml").is_file()
    assert snapshot(tmp_path) == first and not list(first.rglob("__pycache__"))


_BARRIER = []


def _init(barrier) -> None:
    _BARRIER.append(barrier)


def _stage_worker(root: str) -> int:
    def compute():
        with open(Path(root) / "computed.log", "a") as f:
            f.write("x")
        time.sleep(0.3)
        return {"value": 42}

    _BARRIER[0].wait()  # all start together
    store = Store(root)
    out = store.stage("demo", {"k": 1}, compute)
    store.write_result(JID, {"id": JID, "value": out["value"], "writer": os.getpid(), "pad": "y" * 200_000})
    return out["value"]


def test_concurrent_tasks_compute_a_stage_once_and_never_leave_half_a_result(tmp_path):
    n = 6
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n)
    with ctx.Pool(n, initializer=_init, initargs=(barrier,)) as pool:
        values = pool.map(_stage_worker, [str(tmp_path)] * n)
    assert values == [42] * n
    assert (tmp_path / "computed.log").read_text() == "x"  # one computation, n - 1 waited on the lock
    result = json.loads(Store(tmp_path).result_path(JID).read_text())  # whole, whoever wrote last
    assert result["value"] == 42 and len(result["pad"]) == 200_000
    assert not list(tmp_path.rglob("*.tmp"))
