"""`reproduce.sh data check` and `reproduce.sh data synth`: is the data root right, and what right looks like.

`check` reads only metadata and file listings (plus one image per dataset), so it answers in seconds
even for the full CelebA, and says per split whether the group counts are the published ones.
`synth` writes the embedded synthetic data in the real layouts (artifact/data/export.py).
Both print for humans and return an exit code; user errors are one line, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from artifact.config import user_path
from artifact.data import celeba, waterbirds
from artifact.data.cache import decode
from artifact.data.export import LAYOUTS, export
from artifact.data.real import SPLITS, data_root, fmt
from artifact.errors import UserError
from artifact.models import sha256_matches, sha256_prefix

WEIGHTS = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth"}
LOADERS = {"waterbirds": waterbirds, "celeba": celeba}


def _survey(module, root: Path) -> tuple[bool, list[str]]:
    """Report one dataset: where, which layout, per-split group counts vs the published ones, images present."""
    spec = module.SPEC
    try:
        index = spec.scan(root)
    except UserError as e:
        return False, [f"{spec.name}: MISSING - {e}"]
    lines = [f"{spec.name}: {index.folder} ({index.layout} layout), {len(index.files)} images"]
    others = [str(f) for f, _ in module.find(root) if f != index.folder]
    if others:
        lines.append(f"  also found (not used): {', '.join(others)}")
    ok = True
    counts = index.counts()
    lines.append(f"  {'split':<6}{'g0/g1/g2/g3':>26}")
    for s in SPLITS:
        same = counts[s] == spec.expected[s]
        ok &= same
        verdict = "ok" if same else f"MISMATCH, expected {fmt(spec.expected[s])}"
        lines.append(f"  {s:<6}{fmt(counts[s]):>26}  {verdict}")
    if not ok:
        lines.append("  (a subset or a synthetic copy loads only with --allow-count-mismatch)")
    missing = [f for f in index.files if not (index.image_dir / f).is_file()]
    if missing:
        ok = False
        lines.append(f"  {len(missing)} of {len(index.files)} images missing, e.g. {index.image_dir / missing[0]}")
    else:
        try:
            decode(index.image_dir / index.files[0], spec.transform(32))
            lines.append("  all images present; first image decodes")
        except UserError as e:
            ok = False
            lines.append(f"  {e}")
    return ok, lines


def _weights() -> tuple[bool, list[str]]:
    """The ImageNet V1 checkpoints in the torch hub cache; the name's hash part is a sha256 prefix."""
    import torch

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    ok, lines = True, [f"pretrained weights ({hub}):"]
    for arch, name in WEIGHTS.items():
        path = hub / name
        if not path.is_file():
            ok = False
            lines.append(
                f"  {name}: MISSING - fetch with: python -c \"import torchvision.models as m; "
                f"m.{arch}(weights='IMAGENET1K_V1')\" (or set TORCH_HOME)"
            )
            continue
        if sha256_matches(path, name):
            lines.append(f"  {name}: ok ({path.stat().st_size / 1e6:.1f} MB, sha256 matches)")
        else:
            ok = False
            lines.append(f"  {name}: CORRUPT - sha256 does not start with {sha256_prefix(name)}; delete it and fetch again")
    return ok, lines


def check(root_arg: str | None) -> int:
    source = "--data-root" if root_arg else "$OILWATER_DATA_ROOT" if os.environ.get("OILWATER_DATA_ROOT") else "default"
    ok = True
    try:
        root = data_root(root_arg)
        print(f"data root: {root} ({source})")
        for module in LOADERS.values():
            good, lines = _survey(module, root)
            ok &= good
            print("\n".join(lines))
    except UserError as e:
        ok = False
        print(f"MISSING - {e}")
    good, lines = _weights()
    ok &= good
    print("\n".join(lines))
    print("all datasets and weights present and valid" if ok else "some data is missing or invalid (see above)")
    return 0 if ok else 1


def synth(out: str, dataset: str | None, layouts: list[str] | None, scale: float, seed: int) -> int:
    out = user_path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file, not a folder; pass a folder to write the data root into")
    for d in [dataset] if dataset else list(LAYOUTS):
        chosen = tuple(layouts or ())
        if not dataset:  # without --dataset, each --layout picks its own dataset
            chosen = tuple(lay for lay in chosen if lay in LAYOUTS[d])
            if layouts and not chosen:
                continue
        for layout, folder in export(Path(out), d, chosen or None, scale, seed).items():
            print(f"{d}: wrote {layout} layout to {folder}")
    print(f"load with --data-root {out} --allow-count-mismatch (synthetic counts differ from the real ones)")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="reproduce.sh data", description="Inspect or generate datasets.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="report datasets and pretrained weights found; exit 1 if any is missing")
    c.add_argument("--data-root", help="default: $OILWATER_DATA_ROOT, else /data")
    s = sub.add_parser("synth", help="write the synthetic datasets in the real on-disk layouts")
    s.add_argument("--out", required=True, help="folder to write into (becomes a data root)")
    s.add_argument("--dataset", choices=sorted(LAYOUTS), help="default: both")
    s.add_argument("--layout", action="append", type=str.lower, choices=[lay for lays in LAYOUTS.values() for lay in lays],
                   help="repeatable; default: every layout of the dataset(s)")
    s.add_argument("--scale", type=float, default=1.0,
                   help="size relative to the embedded synthetic set (default 1.0: ~8k waterbirds, ~15k celeba)")
    s.add_argument("--seed", type=int, default=12345)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed usage or help
        return int(e.code or 0)
    try:
        if args.cmd == "check":
            return check(str(user_path(args.data_root)) if args.data_root else None)
        return synth(args.out, args.dataset, args.layout, args.scale, args.seed)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a full disk or a read-only --out
        print(f"error: {e.filename or 'writing the data'}: {e.strerror or e}", file=sys.stderr)
        return 2

