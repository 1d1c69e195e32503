"""The one training loop, shared by every method (ERM, JTT, GEORGE's group DRO, EPIC, FL clients).

Data stays uint8 until the batch is on the device; models and batches are channels_last everywhere (on the
CPU too: 1.7x for the tiny CNN's training step, docs/bench.md), CUDA adds bf16 autocast; on the CPU the
loop is deterministic for a given seed and thread count.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.deterministic

from artifact.config import TrainCfg
from artifact.errors import warn
from artifact.logs import LOG
from artifact.store import DamagedFile, atomic_torch_save, torch_load


@dataclass(frozen=True)
class Runtime:
    """How to run (never part of a job's hash): device, threads, determinism, speed switches."""

    device: str = "cpu"
    threads: int = 0  # 0: leave torch's default
    deterministic: bool = True
    eval_batch: int = 1024

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def setup(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.cuda:
            torch.backends.cudnn.benchmark = not self.deterministic
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        else:
            torch.use_deterministic_algorithms(self.deterministic)
            # Deterministic mode also NaN-fills every new tensor, 15 % of a CPU training step; no kernel
            # reads memory it has not written, so results are unchanged (tests/test_runtime.py).
            torch.utils.deterministic.fill_uninitialized_memory = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    def describe(self) -> dict:
        return {"device": self.device, "deterministic": self.deterministic, "amp": "bf16" if self.cuda else "off",
                "channels_last": True, "threads": torch.get_num_threads()}

    def numerics(self) -> dict:
        """What besides a stage's inputs decides its numbers (after setup()): part of every stage key."""
        return numerics(self.device, torch.get_num_threads())


def runtime_settings(device: str, threads: int) -> dict:
    """The Runtime of a run on `device` (resolved: cpu, cuda or cuda:N): deterministic on the CPU, where the
    numbers are bit-identical for a thread count; cuDNN autotuning on CUDA, where they are not anyway."""
    return {"device": device, "deterministic": not device.startswith("cuda"), "threads": threads}


def numerics(device: str, threads: int) -> dict:
    """On the CPU a run is bit-identical for a given thread count and drifts apart for another; on CUDA
    (bf16, cuDNN autotuning) the thread count does not matter but the device type does."""
    return {"device": "cuda"} if device.startswith("cuda") else {"device": "cpu", "threads": int(threads)}


def load_checkpoint(path: Path | None, keys: tuple[str, ...], map_location="cpu") -> dict | None:
    """A training checkpoint to resume from, or None: absent, or damaged (then named, removed, and the
    training restarts from its first epoch: a checkpoint only saves time)."""
    if path is None or not path.is_file():
        return None
    try:
        state = torch_load(path, map_location)
        if not isinstance(state, dict) or not set(keys) <= set(state):
            raise DamagedFile(path, "not a checkpoint of this training (fields missing)")
        return state
    except DamagedFile as e:
        warn(f"checkpoint {e}; removed, this training restarts from its first epoch")
        path.unlink(missing_ok=True)
        return None


def auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _to_input(x_u8: torch.Tensor, rt: Runtime) -> torch.Tensor:
    x = x_u8.to(rt.device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last)


def _autocast(rt: Runtime):
    return torch.autocast("cuda", dtype=torch.bfloat16) if rt.cuda else torch.autocast("cpu", enabled=False)


def prepare(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    model = model.to(rt.device)
    return model.to(memory_format=torch.channels_last)


@torch.no_grad()
def predict(model, split, rt: Runtime, idx: torch.Tensor | None = None, transform: Callable | None = None,
            features: bool = False) -> torch.Tensor:
    """Logits (or penultimate features) of `split` in eval mode, on the CPU as float32."""
    model.eval()
    n = len(split) if idx is None else len(idx)
    idx = torch.arange(n) if idx is None else idx
    out = []
    for start in range(0, n, rt.eval_batch):
        bi = idx[start : start + rt.eval_batch]
        x = _to_input(split.x(bi), rt)
        if transform is not None:
            x = transform(x)
        with _autocast(rt):
            z = model.features(x) if features else model(x)
        out.append(z.float().cpu())
    return torch.cat(out) if out else torch.empty(0)


CHECKPOINT_KEYS = ("epoch", "model", "opt", "gen", "rng", "history", "best", "index", "recorded", "hooks")


def make_optimizer(model, cfg: TrainCfg) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.wd)


def train(
    model,
    split,
    cfg: TrainCfg,
    seed: int,
    rt: Runtime,
    index: torch.Tensor | None = None,
    select: Callable | None = None,
    record_epoch: int | None = None,
    loss_fn: Callable | None = None,
    reindex: Callable | None = None,
    checkpoint: Path | None = None,
) -> dict:
    """Train `model` in place on `split` (sample positions `index` per epoch, default all once).

    `select(epoch, model)` returns (score, info) after each epoch; the best-scoring state (earliest on
    ties) is restored at the end, as JTT's post-hoc selection by validation WGA does. With
    `record_epoch`, the predictions made during that epoch's training pass (train mode, pre-step
    weights) are returned per sample, which is how the official JTT code finds its error set.
    `loss_fn(logits, y, batch_idx)` replaces the mean cross-entropy (group DRO, weighting).
    `reindex(epoch, model)`, called before each epoch, may return the positions to train on from then on
    (EPIC's pruning); None keeps the current ones.
    With `checkpoint`, everything the next epoch depends on is saved there after each epoch, and a run
    that finds it resumes after its last finished epoch with the same numbers as an uninterrupted run
    (a preempted or scancel-ed SLURM job loses at most one epoch); the store removes it with the stage.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    index = torch.arange(len(split)) if index is None else index
    opt = make_optimizer(model, cfg)
    recorded = torch.full((len(split),), -1, dtype=torch.long) if record_epoch is not None else None
    history, best = [], (None, -1, None)
    hooks = [h for h in (loss_fn, reindex) if hasattr(h, "state_dict")]  # stateful: group DRO's q, EPIC's removals
    first_epoch = 0
    state = load_checkpoint(checkpoint, CHECKPOINT_KEYS)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["rng"])
        history, best, index, recorded = state["history"], tuple(state["best"]), state["index"], state["recorded"]
        for hook, hook_state in zip(hooks, state["hooks"], strict=True):
            hook.load_state_dict(hook_state)
        first_epoch = state["epoch"] + 1
    y_all = split.y.to(rt.device)  # once, not a blocking copy per batch
    for epoch in range(first_epoch, cfg.epochs):
        if reindex is not None:
            new_index = reindex(epoch, model)
            index = index if new_index is None else new_index
        model.train()
        t0, loss_sum = time.time(), torch.zeros((), device=rt.device)
        order = index[torch.randperm(len(index), generator=gen)]
        for start in range(0, len(order), cfg.batch_size):
            bi = order[start : start + cfg.batch_size]
            x = _to_input(split.x(bi), rt)
            y = y_all[bi]
            with _autocast(rt):
                logits = model(x)
            if recorded is not None and epoch == record_epoch:
                recorded[bi] = logits.argmax(1).cpu()
            loss = loss_fn(logits.float(), y, bi) if loss_fn else F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(bi)  # read once per epoch: no device sync per batch
        info = {}
        if select is not None:
            score, info = select(epoch, model)
            history.append({"epoch": epoch, **info})
            if best[0] is None or score > best[0]:
                best = (score, epoch, copy.deepcopy(model.state_dict()))
        wga = f"{info['val_wga']:.1f}" if "val_wga" in info else "-"
        LOG.info("epoch %d/%d: loss %.4f, val WGA %s, %.1f s", epoch + 1, cfg.epochs,
                 loss_sum.item() / max(len(order), 1), wga, time.time() - t0)
        if checkpoint is not None and epoch + 1 < cfg.epochs:
            state = {"epoch": epoch, "model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                     "rng": torch.get_rng_state(), "history": history, "best": list(best), "index": index,
                     "recorded": recorded, "hooks": [h.state_dict() for h in hooks]}
            atomic_torch_save(checkpoint, state)
    if best[2] is not None:
        model.load_state_dict(best[2])
    return {"history": history, "best_epoch": best[1], "train_pass_pred": recorded}
