"""Training throughput of our data path against the naive per-epoch JPEG pipeline, in one run.

    python bench/throughput.py [--size 224] [--n 256] [--device cpu|cuda] [--arch resnet18|smallcnn]
                               [--steps K] [--batch B] [--repeats R] [--workers W] [--write-table FILE]

Both paths train the same architecture with the same SGD settings and batch size on the same images:
- ours: the Waterbirds loader (artifact.data) decodes the JPEG fixture once into the uint8 cache; each
  step gathers a uint8 batch from that tensor and artifact.train.train() moves it to the device,
  where the model normalises it (bf16 autocast + channels_last on CUDA);
- naive: what the official JTT code does every epoch: a Dataset that opens each JPEG with PIL,
  torchvision Resize((256, 256)), CenterCrop(224), ToTensor, Normalize, and a DataLoader with
  `--workers` processes (no persistent workers, fp32 as the official code runs).
The fixture is artifact.data.export's synthetic Waterbirds in the group_DRO layout, re-encoded at
random non-square sizes like the real CUB photos (--jpeg-px, default 300..500 px per side), because
decode cost scales with the source pixels and export's own 40..90 px JPEGs would flatter the naive path.

Each repeat is one short "epoch" of K steps timed end to end (a fresh DataLoader, as the official
code makes one per epoch, so prefetching cannot hide decode work outside the timed window); the two
paths alternate, so machine load drifts hit both; the median over repeats is reported. The one-time
cache build is timed separately. Peak memory of each path comes from a separate child process.
Everything is written under a temporary folder; nothing in the repository changes unless
--write-table is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from artifact.config import DatasetCfg, ModelCfg, TrainCfg
from artifact.data.real import IMAGENET_MEAN, IMAGENET_STD
from artifact.models import build_model
from artifact.train import Runtime, _to_input, predict, prepare, train

WATERBIRDS_TRAIN = 4795  # train images at export scale 1.0


# ---------------------------------------------------------------------------------------------------
# Fixture


def write_fixture(root: Path, n_train: int, jpeg_px: tuple[int, int], seed: int = 0) -> Path:
    """export's synthetic Waterbirds (group_DRO layout) with >= n_train train images, re-encoded larger."""
    from artifact.data.export import export

    folder = export(root, "waterbirds", ("group_dro",), scale=n_train / WATERBIRDS_TRAIN * 1.02)["group_dro"]
    rng = np.random.default_rng(seed)
    for path in sorted(folder.rglob("*.jpg")):
        with Image.open(path) as img:
            big = img.resize(tuple(int(v) for v in rng.integers(jpeg_px[0], jpeg_px[1] + 1, 2)), Image.BICUBIC)
        big.save(path, "JPEG", quality=90)
    return root


def train_files(folder: Path) -> tuple[list[Path], list[int]]:
    """The train rows of metadata.csv, as the official Dataset reads them."""
    import pandas as pd

    meta = next(folder.rglob("metadata.csv"))
    df = pd.read_csv(meta)
    df = df[df["split"] == 0]
    return [meta.parent / f for f in df["img_filename"]], df["y"].astype(int).tolist()


class NaiveDataset(torch.utils.data.Dataset):
    """The official JTT/group_DRO CUB dataset: PIL open + convert + torchvision transforms per access."""

    def __init__(self, paths, labels, size: int):
        from torchvision import transforms

        self.paths, self.labels = paths, labels
        r = round(size * 256 / 224)
        self.transform = transforms.Compose([transforms.Resize((r, r)), transforms.CenterCrop(size),
                                             transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = Image.open(self.paths[i]).convert("RGB")
        return self.transform(img), self.labels[i]


# ---------------------------------------------------------------------------------------------------
# The two paths


class Bench:
    def __init__(self, args, root: Path):
        from artifact.data import load_dataset

        self.args, self.rt = args, Runtime(device=args.device, threads=args.threads, deterministic=False)
        self.rt.setup()
        t0 = time.perf_counter()
        cfg = DatasetCfg(name="waterbirds", size=args.size, allow_count_mismatch=True)
        self.split = load_dataset(cfg, str(root)).train  # builds the uint8 cache (decode once)
        self.cache_build_s = time.perf_counter() - t0
        paths, labels = train_files(root)
        self.naive_ds = NaiveDataset(paths, labels, args.size)
        self.n = min(len(self.split), len(self.naive_ds))
        self.tcfg = TrainCfg(epochs=1, lr=1e-3, wd=1e-4, batch_size=args.batch, momentum=0.9)
        self.gen = torch.Generator().manual_seed(0)

    def model(self):
        torch.manual_seed(0)
        cfg = ModelCfg(arch=self.args.arch, pretrained=False, width=16)
        return prepare(build_model(cfg, IMAGENET_MEAN, IMAGENET_STD), self.rt)

    def positions(self, steps: int) -> torch.Tensor:
        return torch.randint(self.n, (steps * self.args.batch,), generator=self.gen)

    def loader(self, steps: int):
        sampler = torch.utils.data.SubsetRandomSampler(self.positions(steps).tolist(), generator=self.gen)
        return torch.utils.data.DataLoader(self.naive_ds, batch_size=self.args.batch, sampler=sampler,
                                           num_workers=self.args.workers, pin_memory=self.rt.cuda)

    def _sync(self):
        if self.rt.cuda:
            torch.cuda.synchronize()

    def ours_train(self, model, steps: int) -> float:
        t0 = time.perf_counter()
        train(model, self.split, self.tcfg, 0, self.rt, index=self.positions(steps))
        self._sync()
        return time.perf_counter() - t0

    def naive_train(self, model, steps: int, measure_workers: bool = False) -> float:
        """The official loop: fp32, batch moved to the device, cross-entropy, SGD step.

        With `measure_workers`, returns the DataLoader workers' memory (PSS, MiB) at the last step instead."""
        net = model.net  # the transform already normalised; same weights and compute otherwise
        opt = torch.optim.SGD(net.parameters(), lr=self.tcfg.lr, momentum=self.tcfg.momentum, weight_decay=self.tcfg.wd)
        net.train()
        t0, it, workers_mb = time.perf_counter(), iter(self.loader(steps)), 0.0
        for x, y in it:
            if measure_workers:
                workers_mb = max(workers_mb, sum(_pss_mb(w.pid) for w in getattr(it, "_workers", [])))
            x, y = x.to(self.rt.device), y.to(self.rt.device)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self._sync()
        return workers_mb if measure_workers else time.perf_counter() - t0

    def ours_data(self, steps: int) -> float:
        """Model inputs only: gather, move, scale and normalise as Normalized.forward does."""
        mean = torch.tensor(IMAGENET_MEAN, device=self.rt.device).view(1, -1, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.rt.device).view(1, -1, 1, 1)
        pos = self.positions(steps)
        t0 = time.perf_counter()
        for start in range(0, len(pos), self.args.batch):
            x = (_to_input(self.split.x(pos[start : start + self.args.batch]), self.rt) - mean) / std
        self._sync()
        del x
        return time.perf_counter() - t0

    def naive_data(self, steps: int) -> float:
        t0 = time.perf_counter()
        for x, _ in self.loader(steps):
            x = x.to(self.rt.device)
        self._sync()
        return time.perf_counter() - t0

    def ours_eval(self, model, steps: int) -> float:
        idx = self.positions(steps)
        rt = Runtime(device=self.rt.device, threads=self.args.threads, deterministic=False, eval_batch=self.args.batch)
        t0 = time.perf_counter()
        predict(model, self.split, rt, idx=idx)
        self._sync()
        return time.perf_counter() - t0


def _median_rate(times: list[float], images: int) -> float:
    return images / statistics.median(times)


def peak_memory_mb(args, root: Path, path: str) -> dict:
    """Peak memory of one path alone, measured in a child process (RSS is per process and never falls)."""
    cmd = [sys.executable, __file__, "--_child", path, "--_root", str(root), *args._argv]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pss_mb(pid: int) -> float:
    """Proportional set size: a forked worker's share of the pages it shares with its parent counts once."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _status_mb(field: str) -> float:
    """A /proc/self/status size. VmHWM is this process's own peak RSS; getrusage's ru_maxrss is not: it
    keeps the peak of the process it was forked from across exec, i.e. the parent bench's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args, root: Path) -> None:
    b = Bench(args, root)
    model = b.model()
    steps = max(2, min(args.steps, 4))
    workers_mb = 0.0
    if args._child == "ours":
        b.ours_train(model, steps)
    else:
        workers_mb = b.naive_train(model, steps, measure_workers=True)
    print(json.dumps({"rss_mb": round(_status_mb("VmHWM"), 1),
                      "workers_pss_mb": round(workers_mb, 1),
                      "cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if b.rt.cuda else None}))


# ---------------------------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def run(args, root: Path) -> dict:
    load_before = load_average()
    t0 = time.perf_counter()
    write_fixture(root, args.n, args.jpeg_px)
    fixture_s = time.perf_counter() - t0
    n_images = sum(1 for _ in root.rglob("*.jpg"))  # the loader decodes every split into the cache
    b = Bench(args, root)
    m_ours, m_naive = b.model(), b.model()
    b.ours_train(m_ours, 1)  # warm-up: allocator, cuDNN autotuning, page cache of the JPEGs and the cache
    b.naive_train(m_naive, 1)
    b.ours_data(1)
    b.naive_data(1)
    t = {k: [] for k in ("ours_train", "naive_train", "ours_data", "naive_data", "ours_eval")}
    data_steps = max(args.steps, b.n // args.batch)
    for _ in range(args.repeats):  # alternate, so that load changes hit both paths alike
        t["ours_train"].append(b.ours_train(m_ours, args.steps))
        t["naive_train"].append(b.naive_train(m_naive, args.steps))
        t["ours_data"].append(b.ours_data(data_steps))
        t["naive_data"].append(b.naive_data(data_steps))
        t["ours_eval"].append(b.ours_eval(m_ours, args.steps))
    train_imgs, data_imgs = args.steps * args.batch, data_steps * args.batch
    rate = {k: _median_rate(v, data_imgs if k.endswith("_data") else train_imgs) for k, v in t.items()}
    result = {
        "arch": args.arch, "size": args.size, "device": args.device, "batch": args.batch, "steps": args.steps,
        "repeats": args.repeats, "workers": args.workers, "n_train_images": b.n, "jpeg_px": list(args.jpeg_px),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "device_name": torch.cuda.get_device_name() if b.rt.cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__, "load_before": load_before, "load_after": load_average(),
        "fixture_s": round(fixture_s, 2), "cache_build_s": round(b.cache_build_s, 2),
        "cache_images": n_images, "cache_build_img_s": round(n_images / b.cache_build_s, 1),
        "img_s": {k: round(v, 2) for k, v in rate.items()},
        "ratio_train": round(rate["ours_train"] / rate["naive_train"], 2),
        "ratio_data": round(rate["ours_data"] / rate["naive_data"], 2),
        "times_s": {k: [round(x, 3) for x in v] for k, v in t.items()},
    }
    if not args.no_memory:
        result["memory_mb"] = {p: peak_memory_mb(args, root, p) for p in ("ours", "naive")}
    return result


def table(r: dict) -> str:
    rows = [("path", "train img/s", "data-only img/s"),
            ("ours (uint8 cache)", r["img_s"]["ours_train"], r["img_s"]["ours_data"]),
            (f"naive (PIL+torchvision, {r['workers']} workers)", r["img_s"]["naive_train"], r["img_s"]["naive_data"]),
            ("ratio ours/naive", f"{r['ratio_train']}x", f"{r['ratio_data']}x")]
    lines = [f"{a:<36} {b!s:>12} {c!s:>16}" for a, b, c in rows]
    mem = r.get("memory_mb")
    if mem:
        lines.append("peak memory: " + ", ".join(
            f"{p} {m['cuda_mb']} MiB CUDA" if m["cuda_mb"] is not None else
            f"{p} {m['rss_mb']} MiB RSS" + (f" + workers {m['workers_pss_mb']} MiB PSS" if m["workers_pss_mb"] else "")
            for p, m in mem.items()))
    lines.append(f"{r['arch']} @ {r['size']} px on {r['device']} ({r['device_name']}, {r['threads']} threads, "
                 f"{r['cpus']} CPUs), batch {r['batch']}, {r['steps']} steps x {r['repeats']} repeats (median); "
                 f"eval {r['img_s']['ours_eval']} img/s; load {r['load_before']} -> {r['load_after']}; "
                 f"one-time cache build: {r['cache_images']} JPEGs in {r['cache_build_s']} s "
                 f"({r['cache_build_img_s']} img/s)")
    return "\n".join(lines)


def write_table(path: Path, r: dict) -> None:
    """Merge this measurement into a throughput table (arch@size@device -> images/s) for cost estimates."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[f"{r['arch']}@{r['size']}@{r['device'].split(':')[0]}"] = {
        "train_img_s": r["img_s"]["ours_train"], "eval_img_s": r["img_s"]["ours_eval"],
        "batch": r["batch"], "device_name": r["device_name"], "threads": r["threads"],
        "load": r["load_before"], "measured": time.strftime("%Y-%m-%d", time.gmtime())}
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--n", type=int, default=256, help="train images in the fixture")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--arch", default="resnet18", choices=("resnet18", "resnet50", "smallcnn"))
    p.add_argument("--steps", type=int, default=3, help="timed steps per repeat")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="naive DataLoader workers (official code: 4)")
    p.add_argument("--jpeg-px", type=lambda s: tuple(int(v) for v in s.split(",")), default=(300, 500),
                   help="fixture JPEG side range lo,hi (real CUB photos are ~300-500 px)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for the model (0: torch's default)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child runs")
    p.add_argument("--write-table", type=Path, help="merge the result into this throughput table (JSON)")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args._argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    return args


def main(argv=None) -> dict | None:
    args = parse(argv)
    if args._child:
        child(args, Path(args._root))
        return None
    with tempfile.TemporaryDirectory(prefix="oilwater-bench-") as tmp:
        os.environ["OILWATER_CACHE"] = str(Path(tmp) / "cache")  # also inherited by the child runs
        r = run(args, Path(tmp) / "data")
    print(table(r))
    print(json.dumps(r))
    if args.write_table:
        write_table(args.write_table, r)
    return r


if __name__ == "__main__":
    main()
