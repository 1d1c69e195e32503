"""The in-memory dataset every stage works on.

Images stay uint8 [N, C, H, W] at model resolution (decoded and resized once); pixel-space attacks
(triggers, perturbations) act on them directly and normalisation happens inside the model.
A split refers to its images through `rows`, so poisoning a handful of samples appends a small part
to the image bank instead of copying the whole training set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from artifact.registry import Registry

DATASETS = Registry("dataset", "artifact.data")

# Group index everywhere: g = 2*y + a (group_DRO, JTT, GEORGE and WILDS agree).
N_GROUPS = 4


class Images:
    """uint8 images kept as a list of parts (base set + appended poisons), indexed as one."""

    def __init__(self, parts: list[torch.Tensor]):
        self.parts = [p for p in parts if len(p)]
        sizes = torch.tensor([len(p) for p in self.parts], dtype=torch.long)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.parts[0].shape[1:])

    def append(self, extra: torch.Tensor) -> Images:
        return Images([*self.parts, extra.to(self.parts[0].device)])

    def to(self, device) -> Images:
        """One contiguous part on `device`: gathering a batch is then a single index, no host sync."""
        return Images([torch.cat(self.parts).to(device) if len(self.parts) > 1 else self.parts[0].to(device)])

    @property
    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parts)

    def __getitem__(self, rows: torch.Tensor) -> torch.Tensor:
        if len(self.parts) == 1:
            return self.parts[0][rows.to(self.parts[0].device)]
        rows = rows.to(self.offsets.device)
        part = torch.bucketize(rows, self.offsets[1:], right=True)
        out = torch.empty((len(rows), *self.parts[0].shape[1:]), dtype=torch.uint8, device=self.parts[0].device)
        for k, p in enumerate(self.parts):
            sel = (part == k).nonzero().squeeze(1)
            if len(sel):
                out[sel.to(p.device)] = p[(rows[sel] - self.offsets[k]).to(p.device)]
        return out


@dataclass
class Split:
    """One split: labels, spurious attribute, the analysis-only poison flag, and image rows."""

    images: Images
    rows: torch.Tensor  # int64 [N]: row of each sample in `images`
    y: torch.Tensor  # int64 [N]
    a: torch.Tensor  # int64 [N]
    is_poison: torch.Tensor = field(default=None)  # bool [N]; never shown to a method

    def __post_init__(self):
        if self.is_poison is None:
            self.is_poison = torch.zeros(len(self.y), dtype=torch.bool)

    @classmethod
    def from_tensor(cls, x: torch.Tensor, y, a) -> Split:
        y = torch.as_tensor(y, dtype=torch.long)
        return cls(Images([x]), torch.arange(len(y)), y, torch.as_tensor(a, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def g(self) -> torch.Tensor:
        return 2 * self.y + self.a

    def x(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images of samples `idx` (all when None)."""
        return self.images[self.rows if idx is None else self.rows[idx]]

    def subset(self, idx: torch.Tensor) -> Split:
        return replace(self, rows=self.rows[idx], y=self.y[idx], a=self.a[idx], is_poison=self.is_poison[idx])

    def replace_samples(self, idx: torch.Tensor, x_new: torch.Tensor, y_new: torch.Tensor) -> Split:
        """Overwrite samples `idx` in place (new images and labels); they are flagged as poisons."""
        images = self.images.append(x_new)
        rows = self.rows.clone()
        rows[idx] = len(self.images) + torch.arange(len(idx))
        y = self.y.clone()
        y[idx] = y_new
        flag = self.is_poison.clone()
        flag[idx] = True
        return replace(self, images=images, rows=rows, y=y, is_poison=flag)

    def append_samples(self, x_new: torch.Tensor, y_new: torch.Tensor, a_new: torch.Tensor) -> Split:
        """Add new samples (flagged as poisons) after the existing ones."""
        images = self.images.append(x_new)
        n = len(x_new)
        return replace(
            self,
            images=images,
            rows=torch.cat([self.rows, len(self.images) + torch.arange(n)]),
            y=torch.cat([self.y, torch.as_tensor(y_new, dtype=torch.long)]),
            a=torch.cat([self.a, torch.as_tensor(a_new, dtype=torch.long)]),
            is_poison=torch.cat([self.is_poison, torch.ones(n, dtype=torch.bool)]),
        )

    def group_counts(self) -> list[int]:
        clean = ~self.is_poison
        return torch.bincount(self.g[clean], minlength=N_GROUPS).tolist()


@dataclass
class GroupData:
    """A dataset with its group roles as the paper names them (LRG-1, LRG-2, HRG)."""

    name: str
    train: Split
    val: Split
    test: Split
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    lrg1: int  # lowest-represented group
    lrg2: int | None  # Waterbirds' second minority group; None for CelebA
    hrg: tuple[int, ...]  # highest-represented groups
    train_group_weights: tuple[float, ...] = ()  # train proportions, for the adjusted average
    # ACC as the paper reports it: Waterbirds' test split is group-balanced unlike its train split, so its
    # papers (JTT, group DRO, this one) report the group accuracies averaged with the train proportions.
    acc_weighted: bool = False

    @property
    def lrg1_class(self) -> int:
        return self.lrg1 // 2

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def with_train(self, train: Split) -> GroupData:
        return replace(self, train=train)

    def to(self, device) -> GroupData:
        """Images of every split on `device` (labels stay on the host for cheap indexing)."""
        moved = {s: replace(self.split(s), images=self.split(s).images.to(device)) for s in ("train", "val", "test")}
        return replace(self, **moved)

    @property
    def nbytes(self) -> int:
        return sum(self.split(s).images.nbytes for s in ("train", "val", "test"))


def load_dataset(cfg, data_root: str | None) -> GroupData:
    """Build the dataset named by `cfg.name` with its registered loader."""
    loader = DATASETS.get_or_fail(cfg.name, "dataset.name")
    return loader(cfg, data_root)
