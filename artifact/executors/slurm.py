"""Run jobs on a SLURM cluster through submitit job arrays: the shared stages, then the jobs.

Wave 1 (one `prepare_job` per `Job.share_key`) and wave 2 (one `execute` per job) are both submitted
at once; every wave-2 array carries `--dependency=afterany:<wave-1 arrays>`. Submitting both lets the
whole grid queue in one go (the submitting shell may leave with `wait: false`), and `afterany` rather
than `afterok` because correctness never depends on the order: a wave-2 task whose stage failed or is
missing computes it itself under the stage's file lock; the waves only keep N sibling tasks from
holding N allocations while they wait on one lock. Arrays are chunked below the cluster's MaxArraySize.

Queued tasks run the code as it was at submission: `artifact/` and `configs/` are copied (content-
hashed, so resubmitting unchanged code reuses the copy) into the log folder, first on the tasks' PYTHONPATH.
Each task is a `submitit.helpers.Checkpointable`: on a time limit or preemption submitit requeues it,
and the rerun recomputes only what is not on disk (stages and results are cached per stage / per job).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit
import yaml

from artifact.config import ROOT, build, config_dir, read_yaml
from artifact.errors import UserError
from artifact.executors import describe, waves
from artifact.executors.progress import Progress
from artifact.experiments import execute, prepare_job
from artifact.jobstate import SUBMISSION, job_state, slurm_queue
from artifact.store import atomic_write_json, dir_mode


@dataclass(frozen=True)
class ClusterCfg:
    """configs/cluster.yaml; every key can be overridden with `--cluster-set KEY=VALUE` (docs/slurm.md)."""

    partition: str | None = None  # --partition (None: the cluster's default)
    account: str | None = None  # --account
    qos: str | None = None  # --qos
    time_min: int = 240  # --time per task; a task that reaches it is requeued (max_requeues times)
    max_requeues: int = 3  # time-outs a task may be requeued after (preemptions do not count)
    gpus_per_job: int = 1  # --gpus-per-node; 0 for CPU-only tasks
    cpus_per_job: int = 8  # --cpus-per-task; also the task's torch threads
    mem_gb: float = 32  # --mem
    array_parallelism: int = 64  # at most this many tasks of one array run at once (--array=...%N)
    max_array_size: int = 0  # tasks per array; 0: the cluster's MaxArraySize - 1 (scontrol show config)
    job_name: str = "oilwater"  # wave 1 is <job_name>-stages, wave 2 <job_name>-jobs
    log_folder: str | None = None  # submitit logs, pickles and the code snapshot (default <results>/slurm)
    sbatch: dict = field(default_factory=dict)  # any other sbatch option, e.g. {constraint: a100, exclude: n3}
    setup: tuple[str, ...] = ()  # shell lines run before the task (module load ..., source venv)
    srun_args: tuple[str, ...] = ()  # extra srun arguments (pyxis: --container-image=..., --container-mounts=...)
    container: str | None = None  # command prefix for python, e.g. "apptainer exec --nv --bind /data img.sif"
    python: str | None = None  # python in the task (default: this interpreter; "python" inside a container)
    wait: bool = True  # wait for the tasks and print the tables; false: submit and return
    poll_s: float = 10  # seconds between squeue polls while waiting

    def validate(self):
        if min(self.time_min, self.cpus_per_job, self.array_parallelism, self.mem_gb) <= 0:
            return "time_min, cpus_per_job, array_parallelism and mem_gb must be > 0"
        if self.gpus_per_job < 0 or self.max_array_size < 0 or self.max_requeues < 0:
            return "gpus_per_job, max_array_size and max_requeues must be >= 0"
        return None


def load_cluster(path: str | None, overrides: list[str]) -> ClusterCfg:
    """configs/cluster.yaml (or `path`) with `KEY=VALUE` overrides (VALUE read as YAML)."""
    path = Path(path) if path else config_dir() / "cluster.yaml"
    data = read_yaml(path)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--cluster-set {item!r}: expected KEY=VALUE, e.g. --cluster-set partition=gpu")
        try:
            data[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"--cluster-set {item!r}: VALUE is not valid YAML") from None
    return build(ClusterCfg, data, str(path))


class Task(submitit.helpers.Checkpointable):
    """One array task: a job's shared stages ("prepare") or the job ("run").

    Checkpointable's default `checkpoint` resubmits the same call, which is all a requeue needs: the
    stages and results already on disk are loaded, not recomputed.
    """

    def __call__(self, fn: str, cfg: dict, results: str, rt: dict, data_root, git) -> dict:
        import artifact
        from artifact.train import auto_device, runtime_settings

        print(f"oilwater code: {Path(artifact.__file__).parent}", file=sys.stderr, flush=True)  # the snapshot
        device = auto_device() if rt["device"] == "auto" else rt["device"]
        threads = int(rt.get("threads") or os.environ.get("SLURM_CPUS_PER_TASK") or 0)  # --threads, else the task's CPUs
        rt = runtime_settings(device, threads)
        if fn == "prepare":
            return prepare_job(cfg, results, rt, data_root)
        return execute(cfg, results, rt, data_root, git)


def snapshot(dest_root: Path) -> Path:
    """Copy artifact/ and configs/ into dest_root/<content hash>/ once; tasks import from there."""
    files = sorted(p for d in ("artifact", "configs") for p in (ROOT / d).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"))
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    dest = dest_root / digest.hexdigest()[:16]
    if not dest.is_dir():
        dest_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest_root, prefix=".tmp-"))
        tmp.chmod(dir_mode())  # the snapshot is read by the tasks, maybe under another group member's account
        for p in files:
            target = tmp / p.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
        try:
            tmp.rename(dest)
        except OSError:  # a concurrent submission made the same copy
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def max_array_size(cluster: ClusterCfg) -> int:
    """Tasks per array: the configured value, else the cluster's MaxArraySize - 1 (indices start at 0)."""
    if cluster.max_array_size:
        return cluster.max_array_size
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return max(1, int(value) - 1)
    return 1000  # SLURM's default MaxArraySize is 1001


def _executor(cluster: ClusterCfg, folder: Path, code: Path, wave: str, dependency: str | None):
    python = cluster.python or ("python" if cluster.container else shlex.quote(sys.executable))
    # The task imports the snapshot, whatever its working directory holds (the submitting checkout, or
    # the image's WORKDIR under pyxis): PYTHONSAFEPATH (3.11+) keeps the cwd off sys.path, and PYTHONPATH
    # puts the snapshot ahead of any installed or editable copy of the package.
    python = f"env PYTHONSAFEPATH=1 PYTHONPATH={shlex.quote(str(code))} {python}"
    if cluster.container:
        python = f"{cluster.container} {python}"
    try:
        ex = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=cluster.max_requeues, python=python)
    except RuntimeError as e:
        raise UserError(f"--executor slurm: {e} (run on a SLURM login node, or use --executor local)") from None
    extra = dict(cluster.sbatch)
    if dependency:
        extra["dependency"] = dependency
    params = dict(job_name=f"{cluster.job_name}-{wave}", partition=cluster.partition, account=cluster.account,
                  qos=cluster.qos, time=cluster.time_min, cpus_per_task=cluster.cpus_per_job,
                  gpus_per_node=cluster.gpus_per_job or None, mem=f"{int(cluster.mem_gb * 1024)}MB",
                  array_parallelism=cluster.array_parallelism, setup=list(cluster.setup),
                  srun_args=list(cluster.srun_args), additional_parameters=extra)
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def _submit(ex, fn: str, items, args, chunk: int) -> list[tuple]:
    """Submit `items` as arrays of at most `chunk` tasks; returns (job, submitit job) pairs."""
    out = []
    for i in range(0, len(items), chunk):
        part = items[i:i + chunk]
        try:
            with ex.batch():
                handles = [ex.submit(Task(), fn, j.cfg, *args) for j in part]
        except (submitit.core.utils.FailedJobError, OSError) as e:  # sbatch's own message, last line
            lines = str(e).strip().splitlines() or [type(e).__name__]
            reason = lines[-1].removeprefix("sbatch: error: ")
            raise UserError(f"sbatch refused the {ex.parameters['job_name']} array: {reason} (check partition, "
                            "account, qos, gpus_per_job... in configs/cluster.yaml or --cluster-set)") from None
        out.extend(zip(part, handles, strict=True))
    return out


def _array_ids(handles) -> list[str]:
    return sorted({h.job_id.split("_")[0] for _, h in handles})


def run_slurm(jobs, store, rt: dict, cluster: ClusterCfg, data_root=None, git=None) -> list[dict] | None:
    """Submit the unfinished `jobs` not already queued in SLURM; wait for them (unless `cluster.wait`
    is false: then return None) and return a status dict per job, failures with their log."""
    queue = slurm_queue() or {}
    in_flight = [j for j in jobs if job_state(store, j.id, queue).name in ("queued", "running")
                 and (store.job_dir(j.id) / SUBMISSION).is_file()]
    pending = [j for j in jobs if not store.is_done(j.id) and j not in in_flight]
    if in_flight:
        print(f"{len(in_flight)} job(s) already queued or running in SLURM: waiting for them, not resubmitting",
              file=sys.stderr)
    if not pending and not in_flight:
        return []
    results = str(store.root.resolve())
    folder = Path(cluster.log_folder).resolve() if cluster.log_folder else Path(results) / "slurm"
    args = (results, rt, os.path.abspath(data_root) if data_root else None, git)
    t0 = time.time()
    stages = []
    if pending:
        code = snapshot(folder / "code")
        chunk = max_array_size(cluster)
        reps, order = waves(pending)
        stages = _submit(_executor(cluster, folder, code, "stages", None), "prepare", reps, args, chunk)
        dependency = "afterany:" + ":".join(_array_ids(stages))
        submitted = _submit(_executor(cluster, folder, code, "jobs", dependency), "run", order, args, chunk)
        for job, handle in submitted:
            (store.job_dir(job.id) / "error.txt").unlink(missing_ok=True)  # superseded by this attempt
            atomic_write_json(store.job_dir(job.id) / SUBMISSION, {
                "slurm": handle.job_id, "log": str(handle.paths.stderr), "code": str(code),
                "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")})
        print(f"submitted {len(reps)} stage task(s) as array {', '.join(_array_ids(stages))} and {len(order)} "
              f"job(s) as array {', '.join(_array_ids(submitted))} (afterany the stages); logs in {folder}",
              file=sys.stderr)
    if not cluster.wait:
        return None
    return _collect(pending + in_flight, store, stages, cluster.poll_s, t0)


def _collect(jobs, store, stages, poll_s: float, t0: float) -> list[dict]:
    """Poll squeue until each job's task has left it; report each job as it ends, failures with their log."""
    progress = Progress(len(jobs), "jobs")
    left = {j.id: j for j in jobs}
    statuses = []
    try:
        while left:
            queue = slurm_queue()
            if queue is None:  # the controller did not answer: ask again, never read it as "all ended"
                time.sleep(poll_s)
                continue
            for jid, job in list(left.items()):
                state = job_state(store, jid, queue)
                if state.name in ("queued", "running"):
                    continue
                del left[jid]
                status = {"id": jid, "job": describe(job), "status": "done" if state.name == "done" else "failed"}
                if state.name != "done":
                    status.update(error=f"{state.name}: {state.detail}", log=state.log)
                statuses.append(status)
                progress.update(describe(job), status["status"])
            if left:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        print("stopped waiting: the tasks go on in SLURM; follow them with `reproduce.sh status TARGET`, collect "
              "with `reproduce.sh check TARGET` or by rerunning the target", file=sys.stderr)
        raise
    for job, _ in stages:
        err = store.job_dir(job.id) / "stage-error.txt"
        if err.is_file() and err.stat().st_mtime >= t0:
            statuses.append({"id": job.id, "job": describe(job), "status": "failed", "log": str(err),
                             "error": f"stage: {err.read_text().strip().splitlines()[-1]}"})
    return statuses


class Slurm:
    """The SLURM executor: submitit job arrays on `cluster` (a ClusterCfg)."""

    def __init__(self, cluster: ClusterCfg):
        self.cluster = cluster

    def run(self, jobs, store, rt: dict, data_root=None, git=None) -> list[dict] | None:
        return run_slurm(jobs, store, rt, self.cluster, data_root, git)
