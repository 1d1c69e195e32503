"""Content hashes, derived seeds, atomic writes, the stage cache, and what counts as a finished job.

A job is done when its result.json parses and carries its own job id (and, when it records one, a
config hashing to that id) and the metrics every job has; anything else in its place (truncated,
garbled, another job's result) is damaged: the run names it, moves it aside and reruns the job, and
`check` / `status` name it and count the job as not done. Every file is written to a temporary name
(locked while it is written) and renamed, so a crash never leaves half a file, and a later run
removes the temporary files a killed writer left (`Store.sweep`). A stage (identification model,
error set, crafted poisons, clean reference) is cached under the hash of exactly the inputs that
determine it, plus the store's `numerics` (what else decides its numbers: the device type and the CPU
thread count), and computed once under a file lock, so concurrent workers or array tasks that need it
wait instead of recomputing. A stage file that does not load is a cache miss: named, removed,
recomputed. Files get the permissions the umask allows (0666 & ~umask), as `open` would give them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from artifact.errors import warn
from artifact.logs import LOG

# Bump when a change alters what a cached stage or a result means (hashes then change everywhere).
CACHE_VERSION = "2"  # 2: ACC is the train-weighted average on Waterbirds; floor(rate * N) poisons
# Every job's metrics have these (Context.evaluate); a result without them is not a finished job.
REQUIRED_METRICS = ("acc", "wga")
# A temporary file older than this whose writer holds no lock on it was left by a killed process.
STALE_TMP_S = 60
DAMAGED_SUFFIX = ".damaged"


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(obj, n: int = 16) -> str:
    return hashlib.sha256((CACHE_VERSION + canonical(obj)).encode()).hexdigest()[:n]


def derive_seed(*parts) -> int:
    """A 31-bit seed from content, never from loop order."""
    return int(hashlib.sha256(canonical(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def umask() -> int:
    """This process's umask, read without changing it (Linux 4.7+), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode `open()` gives a new file: what mkstemp's 0600 is widened to before the rename."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode `mkdir()` gives a new folder: what mkdtemp's 0700 is widened to before the rename."""
    return 0o777 & ~umask()


class DamagedFile(Exception):
    """A file that exists but cannot be what it should be (truncated, garbled, another job's)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def torch_load(path: Path, map_location="cpu"):
    """`torch.load(weights_only=True)`, with a damaged file reported as DamagedFile naming it (never torch's
    advice to load it unsafely). OSErrors (permissions, a missing file) pass through."""
    import torch  # here: the store's JSON side (job ids, results) is used by torch-free commands (--list)

    size = path.stat().st_size
    if size == 0:
        raise DamagedFile(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" on a garbled file
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise DamagedFile(path, "not a file this artifact wrote (a safe load refuses its contents)") from None
    except EOFError:
        raise DamagedFile(path, f"truncated ({size} bytes)") from None
    except RuntimeError as e:
        if "PytorchStreamReader" in str(e) or "zip archive" in str(e):
            raise DamagedFile(path, f"truncated or corrupted ({size} bytes, not a complete torch archive)") from None
        raise DamagedFile(path, f"unreadable ({str(e).splitlines()[0][:120]})") from None
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, UnicodeDecodeError) as e:
        raise DamagedFile(path, f"not a torch file ({type(e).__name__})") from None


def atomic_torch_save(path: Path, obj) -> None:
    """torch.save to a temporary name, then rename: a reader never sees half a checkpoint or stage."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # held until the rename: Store.sweep never removes a live write
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
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


def result_problem(job_id: str, raw: bytes) -> tuple[dict | None, str | None]:
    """(result, None) when `raw` is a finished result of `job_id`, else (None, what is wrong with it)."""
    try:
        result = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, f"is not text ({len(raw)} bytes of binary data)"
    except json.JSONDecodeError as e:
        return None, f"is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}; truncated?)"
    if not isinstance(result, dict):
        return None, f"is not a result (a JSON {type(result).__name__}, not an object)"
    if result.get("id") != job_id:
        held = result.get("id")
        return None, (f"holds the result of job {held}, not of {job_id} (copied or moved here?)" if held
                      else "carries no job id")
    if "config" in result and content_hash(result["config"]) != job_id:
        return None, f"has a config hashing to {content_hash(result['config'])}, not to its job id {job_id}"
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        return None, "has no metrics"
    missing = [m for m in REQUIRED_METRICS
               if isinstance(metrics.get(m), bool) or not isinstance(metrics.get(m), int | float)]
    if missing:
        return None, f"lacks the metrics {', '.join(missing)}"
    return result, None


PREPARE_TIMING = "prepare.json"  # jobs/<id>/: the wall time of the job's shared stages (experiments.prepare_job)


class Store:
    """The results folder: jobs/<id>/result.json, stages/<kind>/<key>.pt, tables/<preset>/.

    `numerics` (Runtime.numerics()) joins every stage key: a stage computed with another thread count or
    on another device type is another stage, so a result's recorded runtime is the one that made its numbers.
    """

    def __init__(self, root: str | Path, numerics: dict | None = None):
        self.root = Path(root)
        self.numerics = numerics

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def result_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result.json"

    # --- results -------------------------------------------------------------------------------

    def read_result(self, job_id: str) -> tuple[dict | None, str | None]:
        """(result, None) if finished; (None, None) if there is no result.json; (None, why) if it is damaged."""
        path = self.result_path(job_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except IsADirectoryError:
            return None, "is a folder, not a file"
        return result_problem(job_id, raw)

    def is_done(self, job_id: str) -> bool:
        return self.read_result(job_id)[0] is not None

    def load_result(self, job_id: str) -> dict | None:
        return self.read_result(job_id)[0]

    def damaged(self, job_ids) -> list[tuple[Path, str]]:
        """(path, why) of each of `job_ids` whose result.json exists but is not a finished result."""
        out = []
        for jid in job_ids:
            _, why = self.read_result(jid)
            if why:
                out.append((self.result_path(jid), why))
        return out

    def set_aside(self, job_id: str) -> tuple[Path, str] | None:
        """Move a damaged result.json to result.json.damaged (the job then counts as not done and reruns);
        returns (where it went, why), or None when the result is fine or absent."""
        path = self.result_path(job_id)
        _, why = self.read_result(job_id)
        if not why:
            return None
        aside = path.with_name(path.name + DAMAGED_SUFFIX)
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # a concurrent run moved it first
            return None
        if result_problem(job_id, aside.read_bytes())[0] is not None and not path.exists():
            os.replace(aside, path)  # a concurrent run wrote a good result between the check and the move
            return None
        return aside, why

    def write_result(self, job_id: str, result: dict) -> None:
        """Write `result` (stamped with `job_id`) atomically; a finished job's old error logs go."""
        atomic_write_json(self.result_path(job_id), {"id": job_id, **result})
        for name in ("error.txt", "stage-error.txt"):
            with contextlib.suppress(FileNotFoundError):
                (self.job_dir(job_id) / name).unlink()

    # --- stages --------------------------------------------------------------------------------

    def _full_key(self, key: dict) -> dict:
        return key if self.numerics is None else {**key, "numerics": self.numerics}

    def stage_path(self, kind: str, key: dict) -> Path:
        return self.root / "stages" / kind / f"{content_hash(self._full_key(key))}.pt"

    def partial_path(self, kind: str, key: dict) -> Path:
        """Where the stage's computation keeps its resumable state (train()'s last epoch, FL's last round)."""
        return self.stage_path(kind, key).with_suffix(".partial.pt")

    def has_stage(self, kind: str, key: dict) -> bool:
        return self.stage_path(kind, key).is_file()

    def _load_stage(self, path: Path, key: dict):
        """The stored value, or raise DamagedFile (FileNotFoundError when absent)."""
        record = torch_load(path)
        if not isinstance(record, dict) or "value" not in record:
            raise DamagedFile(path, "not a stage record")
        if record.get("key") != canonical(self._full_key(key)):
            raise DamagedFile(path, "holds another stage (its key differs; copied or renamed?)")
        return record["value"]

    def stage(self, kind: str, key: dict, compute: Callable[[], dict]) -> dict:
        """Load the stage `kind` for `key`, computing and saving it once if absent or unreadable."""
        path = self.stage_path(kind, key)
        with contextlib.suppress(FileNotFoundError, DamagedFile):  # damaged: handled under the lock
            return self._load_stage(path, key)
        with file_lock(path.with_suffix(".lock")):
            try:
                return self._load_stage(path, key)
            except FileNotFoundError:
                pass
            except DamagedFile as e:
                warn(f"stage {e}; removed, recomputing it (stages are a cache)")
                path.unlink(missing_ok=True)
            t0 = time.time()
            LOG.info("stage %s/%s: computing", kind, path.stem)
            value = compute()
            LOG.info("stage %s/%s: done in %.1f s", kind, path.stem, time.time() - t0)
            atomic_torch_save(path, {"key": canonical(self._full_key(key)), "value": value})
            self.partial_path(kind, key).unlink(missing_ok=True)  # only once the stage is safely stored
            return value

    # --- leftovers -----------------------------------------------------------------------------

    def sweep(self) -> list[str]:
        """Remove what interrupted runs left behind; returns one description per removed file.

        Temporary files (`.NAME.*.tmp`) older than STALE_TMP_S that no live writer holds locked, the
        checkpoint of a stage that is stored (a kill between storing the stage and removing it), and a
        finished job's error.txt / stage-error.txt (an earlier failed attempt). Safe while other runs use
        the folder: a live write holds its lock, and nothing else here is ever read again.
        """
        removed = []
        now = time.time()
        for pattern in ("jobs/*/.*.tmp", "stages/*/.*.tmp", "tables/*/.*.tmp"):
            for tmp in self.root.glob(pattern):
                try:
                    if now - tmp.stat().st_mtime < STALE_TMP_S:
                        continue
                    with open(tmp, "rb") as f:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        tmp.unlink()
                    removed.append(f"{tmp} (left by a killed write)")
                except (BlockingIOError, FileNotFoundError):
                    continue
        for partial in self.root.glob("stages/*/*.partial.pt"):
            if partial.with_name(partial.name.removesuffix(".partial.pt") + ".pt").is_file():
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
                    removed.append(f"{partial} (checkpoint of a stage already stored)")
        for folder in self.root.glob("jobs/*"):
            logs = [folder / n for n in ("error.txt", "stage-error.txt") if (folder / n).is_file()]
            if logs and self.is_done(folder.name):
                for log in logs:
                    with contextlib.suppress(FileNotFoundError):
                        log.unlink()
                        removed.append(f"{log} (an earlier attempt's error; the job has since finished)")
        return removed
