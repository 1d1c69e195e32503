"""Content hashes, derived seeds, atomic writes and the stage cache.

A job is done when its result.json exists; it is written to a temporary name and renamed, so a crash
never leaves half a result. A stage (identification model, error set, crafted poisons, clean reference)
is cached under the hash of exactly the inputs that determine it and computed once under a file lock,
so concurrent workers or array tasks that need it wait instead of recomputing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

# Bump when a change alters what a cached stage or a result means (hashes then change everywhere).
CACHE_VERSION = "2"  # 2: ACC is the train-weighted average on Waterbirds; floor(rate * N) poisons


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(obj, n: int = 16) -> str:
    return hashlib.sha256((CACHE_VERSION + canonical(obj)).encode()).hexdigest()[:n]


def derive_seed(*parts) -> int:
    """A 31-bit seed from content, never from loop order."""
    return int(hashlib.sha256(canonical(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def atomic_torch_save(path: Path, obj) -> None:
    """torch.save to a temporary name, then rename: a reader never sees half a checkpoint or stage."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Store:
    """The results folder: jobs/<id>/result.json, stages/<kind>/<key>.pt, tables/<preset>/."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def result_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result.json"

    def is_done(self, job_id: str) -> bool:
        return self.result_path(job_id).is_file()

    def load_result(self, job_id: str) -> dict | None:
        path = self.result_path(job_id)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def write_result(self, job_id: str, result: dict) -> None:
        atomic_write_json(self.result_path(job_id), result)

    def stage_path(self, kind: str, key: dict) -> Path:
        return self.root / "stages" / kind / f"{content_hash(key)}.pt"

    def partial_path(self, kind: str, key: dict) -> Path:
        """Where the stage's computation keeps its resumable state (train()'s last epoch, FL's last round)."""
        return self.stage_path(kind, key).with_suffix(".partial.pt")

    def has_stage(self, kind: str, key: dict) -> bool:
        return self.stage_path(kind, key).is_file()

    def stage(self, kind: str, key: dict, compute: Callable[[], dict]) -> dict:
        """Load the stage `kind` for `key`, computing and saving it once if absent."""
        path = self.stage_path(kind, key)
        if not path.is_file():
            with file_lock(path.with_suffix(".lock")):
                if not path.is_file():
                    value = compute()
                    atomic_torch_save(path, {"key": canonical(key), "value": value})
                    self.partial_path(kind, key).unlink(missing_ok=True)  # only once the stage is safely stored
                    return value
        return torch.load(path, map_location="cpu", weights_only=True)["value"]
