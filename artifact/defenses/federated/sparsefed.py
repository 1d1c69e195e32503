"""SparseFed's server step (Panda et al. 2022), exact global top-k: a pure function of flat vectors."""

from __future__ import annotations

import torch


def sparsefed_step(g: torch.Tensor, u: torch.Tensor, e: torch.Tensor, k: int, rho: float):
    """One round: momentum u <- rho*u + g, error e <- e + u, apply the k largest |e|, keep the rest.

    Returns (applied update, new u, new e). The selected coordinates are zeroed in e (error feedback) and
    in u (momentum factor masking); the index set is used, not "nonzero entries" as in the reference.
    Server learning rate 1 (pseudo-gradients from local training). No clipping (docs/deviations.md).
    """
    u = rho * u + g
    e = e + u
    idx = e.abs().topk(k, sorted=False).indices
    delta = torch.zeros_like(e)
    delta[idx] = e[idx]
    e[idx] = 0
    u[idx] = 0
    return delta, u, e
