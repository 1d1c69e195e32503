"""Datasets: every loader returns a `GroupData` of uint8 images at model resolution."""

from artifact.data.base import DATASETS, GroupData, Images, Split, load_dataset

__all__ = ["DATASETS", "GroupData", "Images", "Split", "load_dataset"]

# Loaders register themselves on import.
from artifact.data import synthetic  # noqa: E402,F401
