"""Training methods, keyed by the names the configs use (one module per method).

Each method module registers an object with:
- `Params`: a frozen dataclass of its settings;
- `cases`: the interventions it supports (worst / standard / ideal, or only standard);
- `prepare(ctx, params)`: compute the stages shared by all cases (identification model, error set);
- `run(ctx, params, case) -> dict`: the job's metrics.
"""

from artifact.registry import Registry

METHODS = Registry("method", __name__)
