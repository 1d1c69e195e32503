"""Write the embedded synthetic datasets to disk in the real on-disk layouts.

So the real loaders (folder search, metadata parsing, JPEG decoding, resize/crop, cache, count checks)
run end to end without the real archives: in tests, in `reproduce.sh data synth`, and for a user who
wants to see what a correct data root looks like. Images are the 32 px synthetic renders upscaled to
random non-square JPEG sizes (so the resize and crop code is exercised), and the first image of every
folder is stored as grayscale (so `.convert('RGB')` is exercised).

`scale` is the generator's own scale (1.0 = the embedded set the presets use). CelebA: the samples
come from the registered "synth-celeba" generator; should it be absent, the Waterbirds renderer
stands in directly (Blond_Hair = shape, Male = background) at 5 % of CelebA's counts. The other 38
attributes are random -1/1.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from artifact.config import DatasetCfg
from artifact.data.base import DATASETS, GroupData, Split
from artifact.data.celeba import EXPECTED as CELEBA_COUNTS
from artifact.data.synthetic import SYNTH_MEAN, SYNTH_STD, render_waterbirds, scaled_counts, synth_waterbirds
from artifact.errors import UserError

RENDER_SIZE = 32
# Where each layout goes under --out: the places the real archives are usually extracted to.
LOCATIONS = {
    "group_dro": "cub/data/waterbird_complete95_forest2water2",
    "wilds": "waterbirds_v1.0",
    "original": "celeba",
    "kaggle": "celeba-dataset",
}
LAYOUTS = {"waterbirds": ("group_dro", "wilds"), "celeba": ("original", "kaggle")}
WATERBIRDS_HEADER = ("img_id", "img_filename", "y", "split", "place", "place_filename")
CELEBA_ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
    "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
    "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
    "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
LANDMARKS = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"


def synthetic_source(dataset: str, scale: float, seed: int) -> GroupData:
    """The embedded synthetic samples to write (32 px, labels and attribute per split)."""
    if dataset == "waterbirds":
        return synth_waterbirds(DatasetCfg(size=RENDER_SIZE, scale=scale, data_seed=seed))
    if "synth-celeba" in DATASETS:
        cfg = DatasetCfg(name="synth-celeba", size=RENDER_SIZE, scale=scale, data_seed=seed)
        return DATASETS["synth-celeba"](cfg, None)
    splits = {}
    for k, (name, counts) in enumerate(CELEBA_COUNTS.items()):
        x, y, a = render_waterbirds(scaled_counts(counts, 0.05 * scale), RENDER_SIZE, np.random.default_rng([seed, k]))
        splits[name] = Split.from_tensor(x, y, a)
    return GroupData("synth-celeba-fixture", **splits, mean=SYNTH_MEAN, std=SYNTH_STD, lrg1=3, lrg2=None, hrg=(0, 1, 2))


def _samples(data: GroupData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All samples as (x uint8 NCHW, y, a, split code), train then val then test."""
    parts = [(data.split(s), k) for k, s in enumerate(("train", "val", "test"))]
    x = np.concatenate([s.x().numpy() for s, _ in parts])
    y = np.concatenate([s.y.numpy() for s, _ in parts])
    a = np.concatenate([s.a.numpy() for s, _ in parts])
    split = np.concatenate([np.full(len(s), k) for s, k in parts])
    return x, y, a, split


def _write_jpeg(chw: np.ndarray, path: Path, size: tuple[int, int], gray: bool) -> None:
    img = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0))).resize(size, Image.BICUBIC)
    (img.convert("L") if gray else img).save(path, "JPEG", quality=90)


def _random_size(rng: np.random.Generator, portrait: bool) -> tuple[int, int]:
    """(width, height) between 40 and 90 px, never square; CelebA-like portraits are taller than wide."""
    while True:
        w, h = (int(v) for v in rng.integers(40, 91, 2))
        if portrait:
            w, h = min(w, h), max(w, h)
        if w != h:
            return w, h


def _write_table(path: Path, header, rows, count_line: bool = False) -> None:
    """A comma-separated .csv, or a .txt like the original CelebA files (optional count line, header
    ending in a space, values right-aligned to width 2 so they look double-space padded)."""
    with open(path, "w", newline="") as f:
        if path.suffix == ".csv":
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
            return
        if not count_line:  # partition and identity files: bare "000001.jpg 0" rows
            f.writelines(" ".join(str(v) for v in r) + "\n" for r in rows)
            return
        f.write(f"{len(rows)}\n")
        f.write(" ".join(header) + " \n")
        f.writelines(f"{r[0]} " + " ".join(f"{v:>2}" for v in r[1:]) + "\n" for r in rows)


def write_waterbirds(data: GroupData, folder: Path, layout: str, seed: int) -> None:
    """metadata.csv with the exact group_DRO header, images in fake CUB class folders, in shuffled order."""
    rng = np.random.default_rng([seed, 1])
    x, y, a, split = _samples(data)
    order = rng.permutation(len(y))  # the real file interleaves splits and groups
    classes = ("001.Synth_Landbird", "002.Synth_Waterbird")
    places = ("/b/bamboo_forest", "/o/ocean")
    rows = []
    for img_id, i in enumerate(order, start=1):
        cls = classes[y[i]]
        rel = f"{cls}/{cls.split('.', 1)[1]}_{img_id:04d}_{int(i)}.jpg"
        (folder / cls).mkdir(parents=True, exist_ok=True)
        _write_jpeg(x[i], folder / rel, _random_size(rng, portrait=False), gray=img_id == 1)
        rows.append((img_id, rel, int(y[i]), int(split[i]), int(a[i]), f"{places[a[i]]}/synth_{img_id:08d}.jpg"))
    _write_table(folder / "metadata.csv", WATERBIRDS_HEADER, rows)
    if layout == "wilds":
        (folder / "RELEASE_v1.0.txt").write_text("")  # WILDS tries to download without it


def write_celeba(data: GroupData, folder: Path, layout: str, seed: int) -> None:
    """The two annotation files we read plus the three we do not, as the original (.txt) or Kaggle (.csv)."""
    rng = np.random.default_rng([seed, 2])
    x, y, a, split = _samples(data)
    order = np.concatenate([rng.permutation(np.flatnonzero(split == k)) for k in range(3)])  # splits contiguous
    image_dir = folder / "img_align_celeba" / ("img_align_celeba" if layout == "kaggle" else "")
    image_dir.mkdir(parents=True, exist_ok=True)
    attrs = rng.choice([-1, 1], size=(len(order), len(CELEBA_ATTRS)))
    attrs[:, CELEBA_ATTRS.index("Blond_Hair")] = 2 * y[order] - 1
    attrs[:, CELEBA_ATTRS.index("Male")] = 2 * a[order] - 1
    ids = [f"{n:06d}.jpg" for n in range(1, len(order) + 1)]
    for n, i in enumerate(order):
        _write_jpeg(x[i], image_dir / ids[n], _random_size(rng, portrait=True), gray=n == 0)
    # name -> (column names after image_id, rows, original .txt style: None = bare rows,
    # "names" = count line + names, "id" = count line + image_id + names)
    tables = {
        "list_attr_celeba": (CELEBA_ATTRS, [(f, *r) for f, r in zip(ids, attrs.tolist(), strict=True)], "names"),
        "list_eval_partition": (("partition",), [(f, int(split[i])) for f, i in zip(ids, order, strict=True)], None),
        "identity_CelebA": (("identity",), [(f, n % 97 + 1) for n, f in enumerate(ids)], None),
        "list_bbox_celeba": (("x_1", "y_1", "width", "height"), [(f, 10, 10, 40, 50) for f in ids], "id"),
        "list_landmarks_align_celeba": (LANDMARKS.split(), [(f, *range(60, 70)) for f in ids], "names"),
    }
    for name, (names, rows, style) in tables.items():
        if layout == "kaggle" and name != "identity_CelebA":  # Kaggle ships no identity file
            _write_table(folder / f"{name}.csv", ("image_id", *names), rows)
        elif layout == "original":
            header = {None: None, "names": names, "id": ("image_id", *names)}[style]
            _write_table(folder / f"{name}.txt", header, rows, count_line=style is not None)


WRITERS = {"waterbirds": write_waterbirds, "celeba": write_celeba}


def export(out: Path, dataset: str, layouts: tuple[str, ...] | None = None, scale: float = 1.0,
           seed: int = 12345) -> dict[str, Path]:
    """Write `dataset` under `out` in each layout; returns layout -> folder. Existing folders are refused."""
    layouts = layouts or LAYOUTS[dataset]
    bad = [lay for lay in layouts if lay not in LAYOUTS[dataset]]
    if bad:
        raise UserError(f"--layout {bad[0]} is not a {dataset} layout (valid: {', '.join(LAYOUTS[dataset])})")
    if not scale > 0:
        raise UserError(f"--scale must be > 0, got {scale}")
    data = synthetic_source(dataset, scale, seed)
    written = {}
    for layout in layouts:
        folder = Path(out) / LOCATIONS[layout]
        if folder.exists():
            raise UserError(f"{folder} already exists; remove it or pick another --out")
        # Written beside the target and renamed, so a crash never leaves a folder the loader would accept.
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            WRITERS[dataset](data, tmp, layout, seed)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        written[layout] = folder
    return written
