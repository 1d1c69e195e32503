"""Executors: run a list of jobs, the stages they share first, behind one signature (`Executor.run`).

`local` runs worker processes on this machine (artifact/executors/local.py), `slurm` submits submitit job
arrays (artifact/executors/slurm.py; imported only when chosen). Both order the work the same way, by
`waves`: wave 1 computes each group of sibling cases' shared stages once (one representative job per
`Job.share_key`), wave 2 runs every job, case-major, so that jobs that may share a trained model do not
run side by side. Correctness never depends on the waves (a job computes a missing stage itself, under
its file lock); they only keep N workers from waiting on one lock.
"""

from __future__ import annotations

from typing import Protocol


class Executor(Protocol):
    def run(self, jobs: list, store, rt: dict, data_root: str | None, git: str | None) -> list[dict] | None:
        """Run the unfinished `jobs`; a status dict per job run (and per failed stage), failures with
        `error` and `log`; None when the jobs were submitted and not waited for."""


def describe(job) -> str:
    return " ".join(f"{k}={v}" for k, v in job.labels.items())


def waves(pending: list) -> tuple[list, list]:
    """(wave 1: one representative job per share_key, wave 2: every job in case-major order)."""
    reps = list({j.share_key: j for j in pending}.values())
    order = sorted(pending, key=lambda j: (str(j.labels.get("case")), j.labels.get("seed", 0)))
    return reps, order


def get_executor(name: str, workers: int = 1, cluster=None) -> Executor:
    """The executor `name` ("local": `workers` processes; "slurm": on `cluster`, a ClusterCfg)."""
    if name == "slurm":
        from artifact.executors.slurm import Slurm

        return Slurm(cluster)
    from artifact.executors.local import Local

    return Local(workers)
