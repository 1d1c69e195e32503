"""Decode, resize and crop every image once; later runs memory-map the uint8 result.

Real datasets are JPEG folders at varying resolutions. Decoding 200k CelebA images takes minutes, so
each (dataset layout, metadata content, transform, size, selected files) is turned into one
`[N, 3, S, S]` uint8 `.npy` under `$OILWATER_CACHE/data` (default `~/.cache/oilwater/data`). The file
is built under a file lock (concurrent workers wait for the first instead of all decoding) and
written under a temporary name then renamed, so an interrupted run never leaves a half-written
cache. Loads use `mmap_mode="c"`
(copy-on-write), so the OS page cache is shared between worker processes and nothing is decoded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from artifact.errors import UserError
from artifact.store import file_lock, file_mode

# Bump when decoding or a transform changes meaning, so stale caches are never reused.
CACHE_FORMAT = "1"
# Below this many images a thread pool costs more than it saves.
_PARALLEL_MIN = 64


@dataclass(frozen=True)
class Transform:
    """The reference evaluation preprocessing, generalised from 224 px to any size S.

    `resize-crop` (Waterbirds, group_DRO/JTT/WILDS): Resize((R, R)) with R = round(S*256/224), then
    CenterCrop(S). `crop-resize` (CelebA): CenterCrop of the short side (= CenterCrop(178) on the real
    178x218 images), then Resize((S, S)). Written with PIL calls that are exactly what torchvision's
    functional resize/center_crop do on PIL images (tested against them), to keep torchvision's import
    time out of the data path.
    """

    kind: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.size}"

    def __call__(self, img: Image.Image) -> Image.Image:
        s = self.size
        if self.kind == "resize-crop":
            r = round(s * 256 / 224)
            return _center_crop(img.resize((r, r), Image.BILINEAR), s)
        if self.kind == "crop-resize":
            return _center_crop(img, min(img.size)).resize((s, s), Image.BILINEAR)
        raise ValueError(f"unknown transform {self.kind!r}")


def _center_crop(img: Image.Image, side: int) -> Image.Image:
    """torchvision's center_crop rounding; never called with a crop larger than the image."""
    w, h = img.size
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    return img.crop((left, top, left + side, top + side))


def resize_crop(size: int) -> Transform:
    return Transform("resize-crop", size)


def crop_resize(size: int) -> Transform:
    return Transform("crop-resize", size)


def cache_dir() -> Path:
    return Path(os.environ.get("OILWATER_CACHE") or Path.home() / ".cache" / "oilwater") / "data"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def decode(path: Path, transform: Transform) -> np.ndarray:
    """One image as uint8 [3, S, S]; grayscale/CMYK/palette images become RGB like the reference code."""
    if not path.is_file():
        raise UserError(f"image not found: {path}; the dataset folder is incomplete, re-extract the archive")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"cannot read image {path} ({reason}); replace the file (re-extract the archive)"
        ) from None
    return np.asarray(transform(rgb), dtype=np.uint8).transpose(2, 0, 1)


def _workers() -> int:
    env = os.environ.get("OILWATER_DECODE_WORKERS")
    return max(1, int(env)) if env and env.isdigit() else min(8, os.cpu_count() or 1)


def _decode_into(out: np.ndarray, paths: Sequence[Path], transform: Transform) -> None:
    """Fill `out` in place. PIL releases the GIL while decoding and resizing, so threads scale."""
    def one(i: int) -> None:
        out[i] = decode(paths[i], transform)

    n_workers = _workers()
    if len(paths) < _PARALLEL_MIN or n_workers == 1:
        for i in range(len(paths)):
            one(i)
        return
    with ThreadPoolExecutor(n_workers) as pool:
        for _ in pool.map(one, range(len(paths))):  # re-raises the first worker error here
            pass


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True).encode()).hexdigest()


def cached_images(label: str, key_parts: dict, paths: Sequence[Path], transform: Transform) -> torch.Tensor:
    """uint8 [N, 3, S, S] for `paths`, decoded once and memory-mapped afterwards.

    `key_parts` must pin down everything the pixels depend on besides the transform: the caller passes
    the layout, the metadata digest and the list of selected image files.
    """
    key = cache_key({**key_parts, "transform": transform.name, "n": len(paths)})
    path = cache_dir() / f"{label}-{transform.size}px-{key[:20]}.npy"
    shape = (len(paths), 3, transform.size, transform.size)
    if not paths:
        return torch.empty(shape, dtype=torch.uint8)
    cached = _open(path, shape)
    if cached is not None:
        return cached
    try:
        with file_lock(path.with_name(f".{path.name}.lock")):
            if _open(path, shape) is None:  # else another worker built it while we waited
                _build(path, shape, paths, transform)
    except OSError as e:
        raise UserError(
            f"cannot write the image cache {path} ({e.strerror or type(e).__name__}); "
            "set OILWATER_CACHE to a writable folder with enough space"
        ) from None
    return _open(path, shape)


def _build(path: Path, shape: tuple[int, ...], paths: Sequence[Path], transform: Transform) -> None:
    """Decode into a temporary .npy beside `path`, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.npy")
    os.close(fd)
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _decode_into(arr, paths, transform)
        arr.flush()
        del arr
        os.chmod(tmp, file_mode())  # mkstemp's 0600 -> what the umask allows: a shared cache stays shared
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _open(path: Path, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The cached array, memory-mapped copy-on-write; None when absent or not what is expected."""
    if not path.is_file():
        return None
    with contextlib.suppress(ValueError, OSError):
        arr = np.load(path, mmap_mode="c")
        if arr.shape == shape and arr.dtype == np.uint8:
            return torch.from_numpy(arr)
    return None
