"""Federated learning (Appendix A.1/A.3, Table 9): partition, aggregation rules, the round loop.

Aggregators are pure functions on flat tensors (one row per sampled client), so the invariants of
docs/deviations.md (Table 9) can be tested without training anything.
"""
