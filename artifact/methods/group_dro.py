"""Group DRO (Sagawa et al. 2019) as GEORGE's stage 5 runs it (kohpangwei/group_DRO's loss, GEORGE's stable variant).

Pure pieces, reusable with true groups or estimated clusters:
- `GroupDROLoss`: per-batch group mean cross-entropy L_g, adversarial weights q kept in log space
  (GEORGE's "stable" variant: z <- z + eta * (L_g + C / sqrt(n_g)) for every group, absent ones with
  L_g = 0; q = softmax(z)), updated once per batch before the loss sum_g q_g L_g (q detached).
- `uniform_group_index`: one epoch's training positions with every group equally represented.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def group_mean_losses(per_sample: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean loss of each group over the batch (0 for a group absent from it)."""
    sums = torch.zeros(n_groups, dtype=per_sample.dtype, device=per_sample.device).index_add(0, groups, per_sample)
    counts = torch.bincount(groups, minlength=n_groups).to(per_sample.dtype)
    return sums / counts.clamp(min=1)


def dro_step(log_q: torch.Tensor, group_losses: torch.Tensor, adjustment: torch.Tensor, eta: float) -> torch.Tensor:
    """One exponentiated-gradient step on the group weights, in log space (returns the new log-weights)."""
    return log_q + eta * (group_losses.detach() + adjustment)


class GroupDROLoss:
    """Stateful loss for one training run: `loss(logits, y, batch_positions)` as `train()` expects.

    `groups[i]` is the (true or estimated) group of training position i; the size adjustment uses the
    training count of each group over the positions actually trained on (`counts`).
    """

    def __init__(self, groups: torch.Tensor, counts: torch.Tensor, eta: float = 0.01, size_adjustment: float = 0.0):
        self.groups = groups.long()
        self.n_groups = len(counts)
        self.eta = eta
        self.adjustment = size_adjustment / counts.double().clamp(min=1).sqrt()
        self.log_q = torch.zeros(self.n_groups, dtype=torch.float64)

    def state_dict(self) -> dict:  # train()'s checkpoint: the weights carry over epochs
        return {"log_q": self.log_q}

    def load_state_dict(self, state: dict) -> None:
        self.log_q = state["log_q"]

    @property
    def q(self) -> torch.Tensor:
        return torch.softmax(self.log_q, 0)

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        g = self.groups[batch].to(logits.device)
        per_group = group_mean_losses(F.cross_entropy(logits, y, reduction="none"), g, self.n_groups)
        self.log_q = dro_step(self.log_q, per_group.double().cpu(), self.adjustment, self.eta)
        return (self.q.to(per_group) * per_group).sum()


def uniform_group_index(groups: torch.Tensor, seed: int) -> torch.Tensor:
    """N positions in which every non-empty group fills an equal share (uniform group sampling).

    The official sampler draws N i.i.d. positions with weight 1/n_g per epoch; `train()` reshuffles one
    fixed multiset instead, so each group gets ceil(N / K) slots filled by cycling through its members
    in a seeded random order (every member appears floor or ceil times): the sampler's expected
    composition without its draw-to-draw noise (docs/deviations.md).
    """
    gen = torch.Generator().manual_seed(seed)
    present = torch.unique(groups)
    slots = math.ceil(len(groups) / len(present))
    parts = []
    for g in present.tolist():
        members = (groups == g).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=gen)]
        parts.append(members.repeat(math.ceil(slots / len(members)))[:slots])
    return torch.cat(parts)
