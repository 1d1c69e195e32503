"""The FedAvg round loop with a pluggable server rule, sequential clients in one process, resumable.

Round t: sample m = max(1, floor(C*K)) users without replacement; each starts from the global state
and runs `train()` for E local epochs on all of its data with a fresh SGD optimizer; the server
aggregates the client updates with the chosen rule. Every random draw is seeded from (run, round,
client), so the state to resume is just the round index, the global model and the server state,
checkpointed atomically after every round.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from artifact.config import TrainCfg
from artifact.defenses.federated.aggregators import AGGREGATORS, AggCfg
from artifact.defenses.federated.flat import flatten, float_keys, param_mask, unflatten
from artifact.store import atomic_torch_save
from artifact.train import load_checkpoint, train


@dataclass(frozen=True)
class FedCfg:
    users: int = 100  # K
    fraction: float = 0.1  # C: share of users sampled per round
    rounds: int = 10
    local: TrainCfg = field(default_factory=lambda: TrainCfg(epochs=10, lr=1e-2, wd=0.0, batch_size=128))
    iid: bool = True
    minority_users: float = 0.1  # non-IID: share of users holding every minority-group sample
    eval_every: int = 1  # test metrics in the history every this many rounds (0: final model only)

    def validate(self):
        if self.users < 1 or self.rounds < 1 or self.eval_every < 0:
            return "users and rounds must be >= 1, eval_every >= 0"
        if not 0 < self.fraction <= 1 or not 0 < self.minority_users <= 1:
            return "fraction and minority_users must be in (0, 1]"
        return None

    @property
    def clients_per_round(self) -> int:
        return max(1, math.floor(self.fraction * self.users))


def sample_clients(users: int, m: int, seed: int) -> list[int]:
    return torch.randperm(users, generator=torch.Generator().manual_seed(seed))[:m].tolist()


def simulate(model, split, parts: list[torch.Tensor], fed: FedCfg, agg: AggCfg, seed: Callable[..., int], rt,
             checkpoint: Path | None = None, evaluate: Callable | None = None) -> dict:
    """Run fed.rounds rounds from `model`'s state; returns the final global state and per-round history.

    `seed(*tags)` derives every seed; `evaluate(model)` (optional) gives the per-round metrics. With
    `checkpoint`, a run interrupted after round t restarts at round t + 1 with the same outcome.
    """
    rule = AGGREGATORS[agg.name]
    global_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    keys = float_keys(global_state)
    is_param = param_mask(model, keys).to(rt.device)
    w = flatten(global_state, keys)
    server, history, start = None, [], 0
    ck = load_checkpoint(checkpoint, ("round", "state", "server", "history"), rt.device)
    if ck is not None:
        global_state, server, history, start = ck["state"], ck["server"], ck["history"], ck["round"] + 1
        w = flatten(global_state, keys)
    m = fed.clients_per_round
    for t in range(start, fed.rounds):
        clients = sample_clients(fed.users, m, seed("fl-sample", t))
        deltas, ints = [], None
        for c in clients:
            model.load_state_dict(global_state)
            train(model, split, fed.local, seed("fl-client", t, c), rt, index=parts[c])
            state = model.state_dict()
            deltas.append(flatten(state, keys) - w)
            if ints is None:  # integer buffers: the first sampled client's, copied
                ints = {k: v.detach().clone() for k, v in state.items() if k not in keys}
        update, server = rule(torch.stack(deltas), is_param, server, agg)
        w = w + update
        global_state = {**unflatten(w, global_state, keys), **ints}
        model.load_state_dict(global_state)
        due = evaluate is not None and fed.eval_every and ((t + 1) % fed.eval_every == 0 or t + 1 == fed.rounds)
        history.append({"round": t, "clients": clients, **(evaluate(model) if due else {})})
        if checkpoint is not None:
            atomic_torch_save(checkpoint, {"round": t, "state": global_state, "server": server, "history": history})
    model.load_state_dict(global_state)
    return {"state_dict": {k: v.cpu() for k, v in global_state.items()}, "history": history}
