"""CelebA (target Blond_Hair, spurious attribute Male) from the user's data root, parsed by us.

torchvision's `CelebA` class MD5-checks five annotation files, so it rejects the Kaggle mirror and
any fixture; we read the two files we need ourselves. A CelebA folder is the first of the data
root, its subfolders and their `data/` (group_DRO's `celebA/data/`) that holds `list_attr_celeba.txt`
(original release: count line, header, space padded) or `list_attr_celeba.csv` (Kaggle), with
`list_eval_partition.{txt,csv}` beside it and the images in `img_align_celeba/img_align_celeba/`
(Kaggle's nesting) or `img_align_celeba/`. Attributes -1/1 map to 0/1; g = 2*Blond_Hair + Male.
Preprocessing is group_DRO's CenterCrop(178), Resize((224, 224)), generalised to the configured size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from artifact.data.base import DATASETS, GroupData
from artifact.data.cache import crop_resize
from artifact.data.real import (
    REFETCH,
    SPLIT_CODES,
    Index,
    RealSpec,
    candidate_dirs,
    load_real,
    parse_codes,
    read_table,
)
from artifact.errors import UserError
from artifact.protocols import DatasetSpec

LAYOUTS = {".txt": "original", ".csv": "kaggle"}
PLUS_MINUS_ONE = {"-1": 0, "1": 1}

# Published per-split counts, g0 not-blond female, g1 not-blond male, g2 blond female, g3 blond male.
EXPECTED = {
    "train": (71629, 66874, 22880, 1387),
    "val": (8535, 8276, 2874, 182),
    "test": (9767, 7535, 2480, 180),
}


def find(root: Path) -> list[tuple[Path, str]]:
    """Every CelebA folder under `root` as (folder, layout), in the order the loader prefers."""
    return [
        (d, layout)
        for d in candidate_dirs(root)
        for ext, layout in LAYOUTS.items()
        if (d / f"list_attr_celeba{ext}").is_file()
    ]


def _image_dir(folder: Path) -> Path:
    for d in (folder / "img_align_celeba" / "img_align_celeba", folder / "img_align_celeba"):
        if d.is_dir():
            return d
    raise UserError(f"{folder / 'img_align_celeba'}: folder not found; extract img_align_celeba.zip there")


def _partition_file(folder: Path, ext: str) -> Path:
    for e in (ext, *(x for x in LAYOUTS if x != ext)):
        if (folder / f"list_eval_partition{e}").is_file():
            return folder / f"list_eval_partition{e}"
    raise UserError(f"{folder / f'list_eval_partition{ext}'}: file not found; {REFETCH}")


def scan(root: Path) -> Index:
    found = find(root)
    if not found:
        raise UserError(
            f"no CelebA under {root} (looked for list_attr_celeba.txt or .csv in it, one level down and "
            "in */data/); download it (docs/data.md) or pass --data-root"
        )
    folder, layout = found[0]
    ext = next(e for e, name in LAYOUTS.items() if name == layout)
    attr_file = folder / f"list_attr_celeba{ext}"
    part_file = _partition_file(folder, ext)
    image_dir = _image_dir(folder)

    attrs, attr_lines = read_table(attr_file, ("image_id", "Blond_Hair", "Male"))
    parts, part_lines = read_table(part_file, ("image_id", "partition"), default_header=("image_id", "partition"))
    codes = parse_codes(parts["partition"], SPLIT_CODES, part_file, part_lines, "partition")
    # Join on image_id rather than row position (group_DRO's shortcut), so reordered files still load.
    ids = attrs["image_id"].str.strip()
    split = ids.map(dict(zip(parts["image_id"].str.strip(), codes, strict=True)))
    if split.isna().any():
        i = int(np.flatnonzero(split.isna().to_numpy())[0])
        raise UserError(f"{part_file}: no partition for {ids.iloc[i]} (listed in {attr_file.name}); {REFETCH}")
    return Index(
        dataset="celeba",
        layout=layout,
        folder=folder,
        meta_files=(attr_file, part_file),
        image_dir=image_dir,
        files=ids.tolist(),
        y=parse_codes(attrs["Blond_Hair"], PLUS_MINUS_ONE, attr_file, attr_lines, "Blond_Hair"),
        a=parse_codes(attrs["Male"], PLUS_MINUS_ONE, attr_file, attr_lines, "Male"),
        split=split.to_numpy(dtype=np.int64),
    )


ROLES = DatasetSpec(lrg1=3, lrg2=None, hrg=(0, 1, 2), counts=lambda scale: EXPECTED)  # LRG-1: blond male
SPEC = RealSpec(name="celeba", scan=scan, expected=EXPECTED, transform=crop_resize, roles=ROLES)


@DATASETS.register("celeba", spec=ROLES)
def load_celeba(cfg, data_root=None) -> GroupData:
    return load_real(SPEC, cfg, data_root)
