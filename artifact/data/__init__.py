"""Datasets: every loader returns a `GroupData` of uint8 images at model resolution."""

from artifact.data.base import DATASETS, GroupData, Images, Split, load_dataset

__all__ = ["DATASETS", "GroupData", "Images", "Split", "load_dataset"]
