"""Server aggregation rules on flat client updates `deltas` [m, d] (d = every float state entry).

Each rule maps (deltas, is_param, state, cfg) -> (update, state): the global state moves by + update.
Updates are client minus global (Δ_i = w_i − w), the negative of SparseFed's pseudo-gradients, so
"apply" is an addition for every rule and SparseFed with k = d is FedAvg bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from artifact.defenses.federated.sparsefed import sparsefed_step
from artifact.registry import Registry

AGGREGATORS = Registry("aggregator")


@dataclass(frozen=True)
class AggCfg:
    name: str = "fedavg"  # fedavg | median | trimmed-mean | sparsefed
    # Even client counts: "midpoint" = mean of the two middle values (Yin et al., numpy); "lower" = the
    # lower one (torch.median, the CommEfficient reference).
    median: str = "midpoint"
    trim: int = 2  # trimmed mean: b values dropped at each end of every coordinate
    topk: int = 400000  # SparseFed: coordinates kept per round for a model with `topk_params` parameters,
    topk_params: int = 11177538  # ...i.e. ResNet-18 with a 2-way head; other models keep the same fraction
    rho: float = 0.0  # SparseFed server momentum

    def validate(self):
        if self.name not in AGGREGATORS:
            return f"unknown aggregator {self.name!r} (valid: {', '.join(sorted(AGGREGATORS))})"
        if self.median not in ("midpoint", "lower"):
            return "median must be 'midpoint' or 'lower'"
        if self.trim < 0 or self.topk < 1 or self.topk_params < 1:
            return "trim must be >= 0 and topk, topk_params >= 1"
        if not 0.0 <= self.rho < 1.0:
            return "rho must be in [0, 1)"
        if self.rho and self.name != "sparsefed":
            return f"rho (server momentum) applies to sparsefed only, not {self.name!r}; set it to 0"
        return None

    def key(self) -> dict:
        """Only the settings the chosen rule reads, so e.g. every FedAvg run shares one stage."""
        used = {"fedavg": (), "median": ("median",), "trimmed-mean": ("trim",),
                "sparsefed": ("topk", "topk_params", "rho")}[self.name]
        return {"name": self.name, **{k: v for k, v in asdict(self).items() if k in used}}


def median(deltas: torch.Tensor, midpoint: bool = True) -> torch.Tensor:
    """Coordinate-wise median over clients (dim 0)."""
    m = deltas.shape[0]
    s = deltas.sort(dim=0).values
    if m % 2 or not midpoint:
        return s[(m - 1) // 2].clone()
    return (s[m // 2 - 1] + s[m // 2]) / 2


def trimmed_mean(deltas: torch.Tensor, b: int) -> torch.Tensor:
    """Coordinate-wise mean after dropping the b smallest and b largest values (b = 0: the plain mean)."""
    m = deltas.shape[0]
    if m - 2 * b < 1:
        raise ValueError(f"trimmed mean: b={b} leaves nothing of {m} clients")
    if b == 0:  # no sort: the same summation order as FedAvg
        return deltas.mean(0)
    return deltas.sort(dim=0).values[b : m - b].mean(0)


@AGGREGATORS.register("fedavg")
def _fedavg(deltas, is_param, state, cfg):
    return deltas.mean(0), state


@AGGREGATORS.register("median")
def _median(deltas, is_param, state, cfg):
    return median(deltas, cfg.median == "midpoint"), state


@AGGREGATORS.register("trimmed-mean")
def _trimmed(deltas, is_param, state, cfg):
    return trimmed_mean(deltas, cfg.trim), state


def topk_count(cfg: AggCfg, d: int) -> int:
    """k for a model with d parameters: the same fraction cfg.topk / cfg.topk_params (400k of ResNet-18)."""
    return max(1, min(d, round(cfg.topk * d / cfg.topk_params)))


@AGGREGATORS.register("sparsefed")
def _sparsefed(deltas, is_param, state, cfg):
    """Top-k with error feedback on the parameters; BN running statistics get the plain client mean."""
    update = deltas.mean(0)
    g = update[is_param]
    d = g.numel()
    u, e = (state["u"], state["e"]) if state else (torch.zeros_like(g), torch.zeros_like(g))
    delta, u, e = sparsefed_step(g, u, e, topk_count(cfg, d), cfg.rho)
    update[is_param] = delta
    return update, {"u": u, "e": e}
