"""Run jobs on this machine: stages first (once each), then the jobs, with N worker processes.

Every worker, the single default one included, is a process (spawned: a fresh interpreter), never a
thread of the CLI: workers ignore SIGINT, and on Ctrl-C (or SIGTERM, e.g. `docker stop`) the CLI stops
them at once instead of waiting for the job in flight; a worker whose CLI dies anyhow (kill -9)
is stopped by the kernel (Linux). What a stopped job had done is kept: every
training checkpoints after each epoch (atomically), so rerunning the same command resumes it, and
finished jobs are skipped (their result.json is there). N workers split the CPU cores between them
(`--threads` each), or take one GPU each when several are visible. A worker that dies (killed by the
system, out of memory) fails its job with a line that says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch

from artifact.executors import describe, waves
from artifact.executors.progress import Progress
from artifact.experiments import execute, prepare_job

_WORKER: dict = {}
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """Linux: the kernel sends this worker SIGTERM when the CLI process dies, however it dies (SIGKILL, a
    crash): no orphan keeps computing a job nobody waits for. Elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the CLI died before the prctl took effect
        os._exit(1)


def _init_worker(devices, threads: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the CLI's to handle: it stops the workers
    _die_with(parent)
    _WORKER.update(device=devices.get(), threads=threads)


def _call(fn: str, cfg: dict, results: str, rt: dict, data_root, git) -> dict:
    rt = {**rt, "device": _WORKER["device"], "threads": _WORKER["threads"]}
    if fn == "prepare":
        return prepare_job(cfg, results, rt, data_root)
    return execute(cfg, results, rt, data_root, git)


def cpu_count() -> int:
    """The cores this process may use (its affinity mask; a container's cpuset), not the host's."""
    with contextlib.suppress(AttributeError, OSError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads(device: str, workers: int) -> int:
    """torch threads per worker when --threads is not given: the cores split between the CPU workers
    (0 on CUDA: torch's default)."""
    return 0 if device.startswith("cuda") else max(1, cpu_count() // max(1, workers))


def worker_devices(device: str, workers: int) -> list[str]:
    """One GPU per worker when several are visible and no particular one was asked for."""
    n_gpu = torch.cuda.device_count() if device == "cuda" else 0
    return [f"cuda:{i % n_gpu}" for i in range(workers)] if n_gpu > 1 else [device] * workers


def _pool(rt: dict, workers: int) -> ProcessPoolExecutor:
    ctx = mp.get_context("spawn")
    devices = ctx.Queue()
    for d in worker_devices(rt["device"], workers):
        devices.put(d)
    threads = rt.get("threads") or default_threads(rt["device"], workers)
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(devices, threads, os.getpid()))


def _stop(pool: ProcessPoolExecutor) -> None:
    """Terminate the workers now (SIGTERM: no cleanup needed, every file they write is atomic)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.join(5)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class Interrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM while jobs ran: `in_flight` jobs were stopped (their last epoch checkpoints kept)."""

    def __init__(self, in_flight: list[str]):
        super().__init__()
        self.in_flight = in_flight


def run_local(jobs, store, rt: dict, workers: int = 1, data_root=None, git=None) -> list[dict]:
    """Run the unfinished `jobs`; returns a status dict per job run (and per failed stage)."""
    pending = [j for j in jobs if not store.is_done(j.id)]
    if not pending:
        return []
    reps, order = waves(pending)
    workers = max(1, min(workers, len(pending)))
    statuses = []
    old_term = signal.getsignal(signal.SIGTERM)
    in_main = True
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` / `docker stop`: stop as on Ctrl-C
    except ValueError:  # not the main thread (an embedding caller): leave signals alone
        in_main = False
    pool = _pool(rt, workers)
    futures: dict = {}
    try:
        for wave, fn, items in (("stages", "prepare", reps), ("jobs", "run", order)):
            progress = Progress(len(items), wave, workers)
            futures = {pool.submit(_call, fn, j.cfg, str(store.root), rt, data_root, git): j for j in items}
            while futures:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = futures.pop(fut)
                    try:
                        out = fut.result()
                    except BrokenProcessPool:
                        out = {"id": job.id, "status": "failed", "log": None,
                               "error": "its worker process died (killed by the system, e.g. out of memory?); "
                                        "rerun the same command to resume it"}
                    if fn == "run" or out["status"] == "failed":
                        statuses.append({**out, "job": describe(job)})
                    progress.update(describe(job), out["status"])
            if getattr(pool, "_broken", False):  # every later submit would fail: report the rest, stop
                statuses += [{"id": j.id, "job": describe(j), "status": "failed", "log": None,
                              "error": "not run: a worker process died"} for j in order if wave == "stages"]
                break
    except KeyboardInterrupt:
        running = [describe(j) for f, j in futures.items() if f.running()]
        _stop(pool)
        raise Interrupted(running) from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old_term)
        pool.shutdown(wait=True, cancel_futures=True)
    return statuses


class Local:
    """The local executor: `workers` processes on this machine."""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def run(self, jobs, store, rt: dict, data_root=None, git=None) -> list[dict]:
        return run_local(jobs, store, rt, self.workers, data_root, git)
