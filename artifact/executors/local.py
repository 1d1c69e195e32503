"""Run jobs on this machine: stages first (once each), then the jobs, with N workers.

One worker runs in-process; N > 1 are processes that split the CPU cores between them, or take one GPU
each when several are visible. A rerun skips finished jobs (their result.json exists), so Ctrl-C or a
crash loses only the jobs in flight.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait

import torch

from artifact.executors.progress import Progress
from artifact.experiments import execute, prepare_job

_WORKER: dict = {}


def _init_worker(devices, threads: int) -> None:
    _WORKER.update(device=devices.get(), threads=threads)


def _call(fn: str, cfg: dict, results: str, rt: dict, data_root, git) -> dict:
    rt = {**rt, "device": _WORKER["device"], "threads": _WORKER["threads"]}
    if fn == "prepare":
        return prepare_job(cfg, results, rt, data_root)
    return execute(cfg, results, rt, data_root, git)


def describe(job) -> str:
    return " ".join(f"{k}={v}" for k, v in job.labels.items())


def worker_devices(device: str, workers: int) -> list[str]:
    """One GPU per worker when several are visible and no particular one was asked for."""
    n_gpu = torch.cuda.device_count() if device == "cuda" else 0
    return [f"cuda:{i % n_gpu}" for i in range(workers)] if n_gpu > 1 else [device] * workers


def _pool(rt: dict, workers: int):
    on_cpu = not rt["device"].startswith("cuda")
    threads = max(1, (os.cpu_count() or 1) // workers) if on_cpu else 0
    if workers == 1:
        devices = queue.Queue()
        devices.put(rt["device"])
        return ThreadPoolExecutor(1, initializer=_init_worker, initargs=(devices, rt.get("threads") or threads))
    ctx = mp.get_context("spawn")
    devices = ctx.Queue()
    for d in worker_devices(rt["device"], workers):
        devices.put(d)
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(devices, threads))


def run_local(jobs, store, rt: dict, workers: int = 1, data_root=None, git=None) -> list[dict]:
    """Run the unfinished `jobs`; returns a status dict per job run (and per failed stage)."""
    pending = [j for j in jobs if not store.is_done(j.id)]
    if not pending:
        return []
    # Wave 1: the stages shared by a job's sibling cases, one representative each.
    reps = list({j.share_key: j for j in pending}.values())
    # Wave 2 in case-major order, so jobs that may share a trained model do not run side by side.
    order = sorted(pending, key=lambda j: (str(j.labels.get("case")), j.labels.get("seed", 0)))
    workers = max(1, min(workers, len(pending)))
    statuses = []
    with _pool(rt, workers) as pool:
        try:
            for wave, fn, items in (("stages", "prepare", reps), ("jobs", "run", order)):
                progress = Progress(len(items), wave, workers)
                futures = {pool.submit(_call, fn, j.cfg, str(store.root), rt, data_root, git): j for j in items}
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        job = futures.pop(fut)
                        out = fut.result()
                        if fn == "run" or out["status"] == "failed":
                            statuses.append({**out, "job": describe(job)})
                        progress.update(describe(job), out["status"])
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return statuses
