"""A model state as one flat float vector (parameters and BN statistics) plus its integer buffers.

Aggregation works on the float vector; integer buffers (BN num_batches_tracked) are copied from one
client, never averaged.
"""

from __future__ import annotations

import torch


def float_keys(state: dict) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point()]


def flatten(state: dict, keys: list[str]) -> torch.Tensor:
    return torch.cat([state[k].detach().reshape(-1).float() for k in keys])


def unflatten(vec: torch.Tensor, like: dict, keys: list[str]) -> dict:
    """`like` with its float entries `keys` replaced by consecutive slices of `vec` (integer entries kept)."""
    out, start = dict(like), 0
    for k in keys:
        n = like[k].numel()
        out[k] = vec[start : start + n].view_as(like[k]).to(like[k].dtype)
        start += n
    return out


def param_mask(model: torch.nn.Module, keys: list[str]) -> torch.Tensor:
    """Bool over the flat vector: True on trainable parameters, False on buffers (BN running stats)."""
    params = {n for n, p in model.named_parameters() if p.requires_grad}
    state = model.state_dict()
    return torch.cat([torch.full((state[k].numel(),), k in params, dtype=torch.bool) for k in keys])
