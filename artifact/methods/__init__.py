"""Training methods, keyed by the names the configs use: one module per method, imported only when a
config names it (artifact/registry.py). The contract is `protocols.Method` (Params, cases, prepare, run,
stages); docs/architecture.md says how to add one."""

from artifact.registry import Registry

METHODS = Registry("method", __name__)
