"""Where a job stands, for either executor: done / running / queued / failed / interrupted / pending.

Only files in the job's folder say it (plus `squeue` for SLURM ids), so `status` works from any
machine that sees the results folder: `result.json` (done; damaged when it is not a finished result of
this job, artifact/store.py), `running.json` (written by `execute`
while it works: host, pid, SLURM task id), `error.txt` (failed with a traceback), `slurm.json` (the
SLURM task it was last submitted as, and that task's log).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from typing import NamedTuple

from artifact.logs import LOG_NAME
from artifact.store import Store, atomic_write_json

MARKER, SUBMISSION = "running.json", "slurm.json"
STATES = ("done", "damaged", "running", "queued", "interrupted", "failed", "pending")


def slurm_task_id() -> str | None:
    """This process's SLURM task as squeue names it (`123_4` for array tasks), None outside SLURM."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


@contextlib.contextmanager
def running(store: Store, job_id: str):
    """Mark `job_id` as in progress; a process killed mid-job leaves the marker (-> interrupted)."""
    path = store.job_dir(job_id) / MARKER
    atomic_write_json(path, {"host": socket.gethostname(), "pid": os.getpid(), "slurm": slurm_task_id(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def slurm_queue() -> dict[str, str] | None:
    """{task id: SLURM state} of this user's queued and running tasks (arrays expanded); {} without
    SLURM, None when squeue did not answer (so a controller hiccup never reads as "all finished")."""
    if not shutil.which("squeue"):
        return {}
    try:
        out = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(line.split("|", 1) for line in out.split() if "|" in line)


class State(NamedTuple):
    name: str  # one of STATES
    detail: str = ""
    log: str | None = None


def _read(path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_state(store: Store, job_id: str, queue: dict[str, str]) -> State:
    """Where one job stands; `queue` is `slurm_queue()` (passed in: one squeue call per status)."""
    result, damage = store.read_result(job_id)
    if result is not None:
        return State("done")
    if damage:
        return State("damaged", f"result.json {damage}; the next run sets it aside and reruns the job",
                     str(store.result_path(job_id)))
    folder = store.job_dir(job_id)
    sub = _read(folder / SUBMISSION) or {}
    if sub.get("slurm") in queue:
        slurm_state = queue[sub["slurm"]]
        return State("queued" if slurm_state == "PENDING" else "running", f"slurm {sub['slurm']} {slurm_state}",
                     sub.get("log"))
    marker = _read(folder / MARKER)
    if marker:
        if marker.get("slurm"):
            where, alive = f"slurm {marker['slurm']}", marker["slurm"] in queue
        else:
            where = f"{marker.get('host')} pid {marker.get('pid')}"
            # Another machine's local run cannot be checked from here: trust its marker.
            alive = marker.get("host") != socket.gethostname() or _alive(int(marker.get("pid", 0)))
        if alive:
            log = sub.get("log") or (str(folder / LOG_NAME) if (folder / LOG_NAME).is_file() else None)
            return State("running", f"{where} since {marker.get('started')}", log)
        return State("interrupted", f"{where} stopped without a result (killed, cancelled or out of time)",
                     sub.get("log") if marker.get("slurm") else None)
    if (folder / "error.txt").is_file():
        lines = (folder / "error.txt").read_text().strip().splitlines()
        return State("failed", lines[-1] if lines else "error", str(folder / "error.txt"))
    if sub:
        return State("failed", f"slurm {sub.get('slurm')} ended without a result or a traceback", sub.get("log"))
    return State("pending")
