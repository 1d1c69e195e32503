"""Poisoning attacks, keyed by the names the configs use: one module per attack, imported only when a
config names it (artifact/registry.py). The contract is `protocols.Attack` (Params, poison or
poison_with_context, success, stages; optional needs_reference and backdoor flags)."""

import math

from artifact.registry import Registry

ATTACKS = Registry("attack", __name__)


def poison_count(rate: float, n_train: int) -> int:
    """floor(rate * N), at least one: the paper's IDNF cells are attainable only with the floor
    (docs/deviations.md); a scaled-down preset whose rate gives less than one poison still plants one."""
    return max(1, math.floor(rate * n_train + 1e-9))  # 0.29 * 100 is 28.999...: the product is meant exactly

