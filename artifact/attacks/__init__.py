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

from artifact.registry import Registry, import_all

ATTACKS = Registry("attack")
import_all(__name__, __path__)
