"""Executors run a list of jobs: `local` (a process pool, one GPU per worker) or `slurm` (submitit)."""
