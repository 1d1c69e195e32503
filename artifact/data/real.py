"""What the Waterbirds and CelebA loaders share: the data root, one sample table, the checks, the assembly.

Each loader only knows where its files live and how its metadata is spelled; it returns an `Index`
(relative image path, y, a, split per sample). Everything after that, the count check against the
published release, the seeded train subsample, the decode-once cache and the `GroupData`, is here,
so both datasets behave the same way and `data check` can reuse the first half without decoding.
Every problem a user can cause is a one-line `UserError` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artifact.data.base import N_GROUPS, GroupData, Split
from artifact.data.cache import Transform, cached_images, file_digest
from artifact.errors import UserError
from artifact.protocols import DatasetSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
SPLIT_CODES = {"0": 0, "1": 1, "2": 2}
DEFAULT_ROOT = "/data"
COUNT_FIX = "pass --allow-count-mismatch (or set dataset.allow_count_mismatch: true) to use it anyway"
REFETCH = "re-extract the official archive (see docs/data.md)"


def data_root(arg: str | os.PathLike | None = None) -> Path:
    """`--data-root`, else $OILWATER_DATA_ROOT, else /data; it must exist."""
    root = Path(arg or os.environ.get("OILWATER_DATA_ROOT") or DEFAULT_ROOT).expanduser()
    if not root.is_dir():
        raise UserError(
            f"data root {root} does not exist or is not a folder; "
            "pass --data-root DIR or set OILWATER_DATA_ROOT (see docs/data.md)"
        )
    return root


def candidate_dirs(root: Path) -> list[Path]:
    """Where a dataset folder may sit: the root, its subfolders, and their data/ (group_DRO's cub/data)."""
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        children = []
    return [root, *children, *(c / "data" for c in children if (c / "data").is_dir())]


@dataclass
class Index:
    """One row per image of a dataset on disk, in metadata order; nothing decoded yet."""

    dataset: str
    layout: str
    folder: Path  # the dataset folder that was found
    meta_files: tuple[Path, ...]  # what the labels were read from (hashed into the cache key)
    image_dir: Path
    files: list[str]  # image paths relative to image_dir
    y: np.ndarray
    a: np.ndarray
    split: np.ndarray

    @property
    def g(self) -> np.ndarray:
        return 2 * self.y + self.a

    def counts(self) -> dict[str, tuple[int, ...]]:
        return {
            name: tuple(np.bincount(self.g[self.split == k], minlength=N_GROUPS).tolist())
            for k, name in enumerate(SPLITS)
        }

    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.meta_files:
            h.update(f"{p.name}:{file_digest(p)};".encode())
        return h.hexdigest()


def read_table(
    path: Path, needed: Sequence[str], default_header: Sequence[str] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The `needed` columns (as str) of a comma- or whitespace-separated table, with file line numbers.

    Accepts the variants in circulation: CelebA's original `.txt` (count line, then a header of
    attribute names without `image_id`, padded with double spaces), the Kaggle `.csv`, headerless
    partition files (`default_header` names their columns) and ordinary CSVs such as metadata.csv.
    """
    if not path.is_file():
        raise UserError(f"{path}: file not found; {REFETCH}")
    try:
        with open(path, encoding="utf-8") as f:
            head = [line.strip() for line in (f.readline() for _ in range(3)) if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it as text ({type(e).__name__}); {REFETCH}") from None
    if not head:
        raise UserError(f"{path}: the file is empty; {REFETCH}")
    comma = "," in (head[1] if len(head) > 1 else head[0])
    tokens = lambda line: [t.strip() for t in line.split(",")] if comma else line.split()
    skip, declared = 0, None
    if len(tokens(head[0])) == 1 and head[0].isdigit() and len(head) > 1:
        skip, declared = 1, int(head[0])  # CelebA's original files start with the image count
    first = tokens(head[skip]) if skip < len(head) else []
    is_data = bool(first) and first[0].lower().endswith((".jpg", ".jpeg", ".png"))
    if is_data:
        header = list(default_header or [])
    else:
        header = [t for t in first if t]  # a trailing separator leaves an empty name
        skip += 1
        width = len(tokens(head[skip])) if skip < len(head) else len(header)
        if width == len(header) + 1:
            header = ["image_id", *header]  # the original attribute file has no image_id column name
    missing = [c for c in needed if c not in header]
    if missing:
        shown = ",".join(header[:6]) + (",..." if len(header) > 6 else "")
        raise UserError(f"{path}: missing column {missing[0]!r} (header: {shown or 'none'}); {REFETCH}")
    try:
        df = pd.read_csv(
            path, sep="," if comma else r"\s+", header=None, names=header, skiprows=skip,
            usecols=list(needed), dtype=str, keep_default_na=False, skipinitialspace=True,
        )
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: cannot parse it ({reason}); {REFETCH}") from None
    if declared is not None and declared != len(df):
        raise UserError(f"{path}: line 1 says {declared} images but {len(df)} are listed; {REFETCH}")
    return df, np.arange(len(df)) + skip + 1


def parse_codes(values, valid: dict[str, int], path: Path, lines: np.ndarray, column: str) -> np.ndarray:
    """Map string codes to ints; the first unknown one is reported with its file line."""
    raw = np.asarray(values, dtype=str)
    uniq, inverse = np.unique(np.char.strip(raw), return_inverse=True)
    bad = [str(u) for u in uniq if u not in valid]
    if bad:
        i = int(np.flatnonzero(np.char.strip(raw) == bad[0])[0])
        raise UserError(
            f"{path} line {lines[i]}: {column} {bad[0]!r} is not one of {', '.join(valid)}; "
            f"fix the file or {REFETCH}"
        )
    return np.array([valid[u] for u in uniq], dtype=np.int64)[inverse.reshape(-1)]


def fmt(counts: Sequence[int]) -> str:
    return "/".join(str(c) for c in counts)


def count_mismatch(index: Index, expected: dict[str, tuple[int, ...]]) -> str | None:
    """One line comparing every split with the published counts, or None when all match."""
    found = index.counts()
    if all(found[s] == tuple(expected[s]) for s in SPLITS):
        return None
    detail = ", ".join(f"{s} expected {fmt(expected[s])} found {fmt(found[s])}" for s in SPLITS)
    return f"{index.dataset} at {index.folder}: per-group counts (g0/g1/g2/g3) differ from the official release: {detail}"


def subsample(rows: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded `fraction` of `rows`, stratified by group so minority groups keep their share."""
    if fraction >= 1:
        return rows
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(rows[groups == g], size=max(1, round(fraction * int((groups == g).sum()))), replace=False)
        for g in range(N_GROUPS)
        if (groups == g).any()
    ]
    return np.sort(np.concatenate(keep))


@dataclass(frozen=True)
class RealSpec:
    """A real dataset: how to find and index it, what it should contain, and its group roles."""

    name: str
    scan: Callable[[Path], Index]
    expected: dict[str, tuple[int, ...]]
    transform: Callable[[int], Transform]
    roles: DatasetSpec  # the group roles (and, for the dry run, the release's counts)


def load_real(spec: RealSpec, cfg, root: str | os.PathLike | None) -> GroupData:
    """Index, check counts, subsample train, decode through the cache, and assemble the GroupData."""
    if not 0 < cfg.train_fraction <= 1:
        raise UserError(f"dataset.train_fraction must be in (0, 1], got {cfg.train_fraction}")
    index = spec.scan(data_root(root))
    problem = count_mismatch(index, spec.expected)
    if problem and not cfg.allow_count_mismatch:
        raise UserError(f"{problem}; {REFETCH}, or {COUNT_FIX}")
    digest = index.digest()
    transform = spec.transform(cfg.size)
    splits = {}
    for k, name in enumerate(SPLITS):
        rows = np.flatnonzero(index.split == k)
        if name == "train":
            rows = subsample(rows, index.g[rows], cfg.train_fraction, cfg.data_seed)
        if not len(rows):
            raise UserError(f"{index.meta_files[-1]}: no {name} images are listed; {REFETCH}")
        files = [index.files[i] for i in rows]
        key = {
            "dataset": spec.name,
            "layout": index.layout,
            "metadata": digest,
            "files": hashlib.sha256("\n".join(files).encode()).hexdigest(),
        }
        x = cached_images(f"{spec.name}-{name}", key, [index.image_dir / f for f in files], transform)
        splits[name] = Split.from_tensor(x, index.y[rows], index.a[rows])
    train = splits["train"].group_counts()
    return GroupData(
        name=spec.name,
        **splits,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        lrg1=spec.roles.lrg1,
        lrg2=spec.roles.lrg2,
        hrg=spec.roles.hrg,
        train_group_weights=tuple(c / sum(train) for c in train),
        acc_weighted=spec.roles.acc_weighted,
    )
