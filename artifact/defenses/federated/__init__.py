"""Federated learning (Appendix A.1/A.3, Table 9): partition, aggregation rules, the round loop.

Aggregators are pure functions on flat tensors (one row per sampled client), so the invariants of
shared/reference/attacks_defenses.md §5-6 can be tested without training anything.
"""
