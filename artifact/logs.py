"""What a running job says (stdlib `logging`): one line per epoch of every training, in the job's log.

Each job writes `jobs/<id>/log.txt`: the stages it computes (started, finished, seconds) and per epoch the
mean training loss, the validation WGA when the epoch is selected on it, and the epoch's seconds. Under
SLURM (or with OILWATER_LOG=stderr) the same lines go to stderr, so the task's log shows progress while it
runs; a local run leaves the terminal to its progress line (`status TARGET` names the log of a running job).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

LOG = logging.getLogger("artifact")
LOG_NAME = "log.txt"


@contextlib.contextmanager
def job_log(folder: Path):
    """Send the artifact's log lines to `folder`/log.txt (appended: a resumed job keeps its history). A
    folder that cannot be written (a full disk) costs the log, never the job: its own write says so."""
    handlers = []
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(folder / LOG_NAME))
    if os.environ.get("SLURM_JOB_ID") or os.environ.get("OILWATER_LOG") == "stderr":
        handlers.append(logging.StreamHandler(sys.stderr))
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    LOG.setLevel(logging.INFO)
    for h in handlers:
        h.setFormatter(fmt)
        LOG.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            LOG.removeHandler(h)
            h.close()
