"""Waterbirds from the user's data root, in the group_DRO/JTT or the WILDS layout.

Both layouts are one `metadata.csv` (`img_id,img_filename,y,split,place,place_filename`) next to the
CUB class folders; only the folder name differs. Searched for in the data root itself (or the root is
the folder), in each subfolder and in each `<subfolder>/data/` (group_DRO's `cub/data/`); a
`waterbird_complete95_forest2water2/` (group_DRO, JTT) wins over a `waterbirds_v1.0/` (WILDS), and
within a layout the shallowest, then alphabetically first, wins. Groups are
g = 2*y + place; split codes 0/1/2 are train/val/test; preprocessing is group_DRO's Resize((256, 256)),
CenterCrop(224), generalised to the configured size.
"""

from __future__ import annotations

from pathlib import Path

from artifact.data.base import DATASETS, GroupData
from artifact.data.cache import resize_crop
from artifact.data.real import (
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

FOLDERS = {"waterbird_complete95_forest2water2": "group_DRO", "waterbirds_v1.0": "WILDS"}
COLUMNS = ("img_filename", "y", "split", "place")
BINARY = {"0": 0, "1": 1}

# Published per-split counts, g0 landbird/land, g1 landbird/water, g2 waterbird/land, g3 waterbird/water.
EXPECTED = {
    "train": (3498, 184, 56, 1057),
    "val": (467, 466, 133, 133),
    "test": (2255, 2255, 642, 642),
}


def find(root: Path) -> list[tuple[Path, str]]:
    """Every Waterbirds folder under `root` as (folder, layout), in the order the loader prefers."""
    found = [(root, FOLDERS[root.name])] if root.name in FOLDERS else []
    for parent in candidate_dirs(root):
        found += [(parent / name, layout) for name, layout in FOLDERS.items() if (parent / name).is_dir()]
    preference = list(FOLDERS.values())
    return sorted(found, key=lambda f: preference.index(f[1]))


def scan(root: Path) -> Index:
    found = find(root)
    if not found:
        raise UserError(
            f"no Waterbirds under {root} (looked for waterbird_complete95_forest2water2/ or waterbirds_v1.0/ "
            "in it, one level down and in */data/); download it (docs/data.md) or pass --data-root"
        )
    folder, layout = found[0]
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise UserError(f"{meta}: file not found; the Waterbirds folder is incomplete, re-extract the archive")
    df, lines = read_table(meta, COLUMNS)
    return Index(
        dataset="waterbirds",
        layout=layout,
        folder=folder,
        meta_files=(meta,),
        image_dir=folder,
        files=df["img_filename"].str.strip().tolist(),
        y=parse_codes(df["y"], BINARY, meta, lines, "y"),
        a=parse_codes(df["place"], BINARY, meta, lines, "place"),
        split=parse_codes(df["split"], SPLIT_CODES, meta, lines, "split"),
    )


ROLES = DatasetSpec(lrg1=2, lrg2=1, hrg=(0, 3), counts=lambda scale: EXPECTED, acc_weighted=True)  # LRG-1:
# waterbird on land, LRG-2: landbird on water
SPEC = RealSpec(name="waterbirds", scan=scan, expected=EXPECTED, transform=resize_crop, roles=ROLES)


@DATASETS.register("waterbirds", spec=ROLES)
def load_waterbirds(cfg, data_root=None) -> GroupData:
    return load_real(SPEC, cfg, data_root)
