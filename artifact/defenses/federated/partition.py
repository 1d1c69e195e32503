"""Split the training set among FL users: IID, or non-IID with every minority sample on 10 % of users.

The non-IID partition is the paper's ("only 10 % of the users have samples from the under-represented
groups"): it is what makes a minority-holding client's update an outlier that robust aggregation drops.
"""

from __future__ import annotations

import torch

from artifact.errors import UserError


def _perm(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)


def iid(n: int, users: int, seed: int) -> list[torch.Tensor]:
    """floor(n / users) positions per user, drawn without replacement; the remainder is dropped (base code)."""
    size = n // users
    if size < 1:
        raise UserError(f"fl: {users} users for {n} training samples; use fewer users (method.fed.users)")
    order = _perm(n, torch.Generator().manual_seed(seed))
    return list(order[: users * size].view(users, size))


def non_iid(g: torch.Tensor, minority: tuple[int, ...], users: int, minority_share: float, seed: int) -> list[torch.Tensor]:
    """Minority-group samples split evenly among round(minority_share * users) random users, nobody else.

    The majority samples then fill every user to about n / users, the other users first, so any shortfall
    falls on the minority holders. Positions within each user are in random order.
    """
    n = len(g)
    holders_n = max(1, round(minority_share * users))
    if n < users or holders_n > users:
        raise UserError(f"fl: cannot split {n} samples among {users} users with {holders_n} minority holders; "
                        "use fewer users (method.fed.users) or a smaller minority_users")
    gen = torch.Generator().manual_seed(seed)
    is_min = torch.isin(g, torch.tensor(minority, dtype=g.dtype))
    mino = is_min.nonzero().squeeze(1)
    majo = (~is_min).nonzero().squeeze(1)
    mino, majo = mino[_perm(len(mino), gen)], majo[_perm(len(majo), gen)]
    users_order = _perm(users, gen)
    holders = users_order[:holders_n]
    target = [n // users + (1 if u < n % users else 0) for u in range(users)]
    parts: list[list[torch.Tensor]] = [[] for _ in range(users)]
    for h, chunk in zip(holders.tolist(), torch.tensor_split(mino, holders_n), strict=True):
        parts[h].append(chunk)
    fill_order = [*users_order[holders_n:].tolist(), *holders.tolist()]  # non-holders first
    start = 0
    for u in fill_order:
        need = max(0, target[u] - sum(len(c) for c in parts[u]))
        parts[u].append(majo[start : start + need])
        start += need
    return [torch.cat(p)[_perm(sum(len(c) for c in p), gen)] for p in parts]
