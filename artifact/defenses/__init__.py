"""Poisoning defenses as pure algorithms (EPIC's selection, STRIP's entropy, federated aggregation).

Plain modules, no registry: the methods that apply a defense (methods/epic.py, methods/strip.py,
the federated simulation) import what they need, so each algorithm stays testable without a model.
"""
