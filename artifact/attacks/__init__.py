"""Poisoning attacks, keyed by the names the configs use (one module per attack).

Each attack module registers an object with:
- `Params`: a frozen dataclass of its settings (validated from the preset/table config);
- `poison(data, params, seed) -> (data, info)`: the poisoned training set and what evaluation needs;
  or, for attacks that train a model or cache their work (GM), `poison_with_context(ctx, params, seed)`,
  which the job context prefers when present (ctx.data is then the clean data; ctx.stage caches);
- `success(model, data, params, info, rt, reference) -> dict`: ASR and friends on the test set;
- `needs_reference`: True when ASR is measured against a clean model (SA), supplied as `reference`;
- `backdoor`: True when ASR is a test-time success rate that a clean model also has (DLBD, GM), so a
  preset with `clean_baseline` measures it on a clean model too (the quick preset's sanity range).
"""

import math

from artifact.registry import Registry

ATTACKS = Registry("attack", __name__)


def poison_count(rate: float, n_train: int) -> int:
    """floor(rate * N), at least one: the paper's IDNF cells are attainable only with the floor
    (docs/deviations.md); a scaled-down preset whose rate gives less than one poison still plants one."""
    return max(1, math.floor(rate * n_train + 1e-9))  # 0.29 * 100 is 28.999...: the product is meant exactly

