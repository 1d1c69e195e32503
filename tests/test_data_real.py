"""Real-data loaders on fixtures written in the real on-disk layouts (artifact/data/export.py).

Covers both layouts of both datasets, the decode-once cache, the count check, `data check`/`data synth`,
and every bad input a user can produce, each of which must be a one-line UserError naming the fix.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artifact.config import DatasetCfg
from artifact.data import DATASETS, cache, celeba, load_dataset, waterbirds
from artifact.data import tools as data_tools
from artifact.data.cache import crop_resize, decode, resize_crop
from artifact.data.export import LOCATIONS, export, synthetic_source
from artifact.data.real import IMAGENET_MEAN, SPLITS
from artifact.errors import UserError

S = 32
SCALE = {"waterbirds": 0.01, "celeba": 0.01}
DATASET_OF = {"group_dro": "waterbirds", "wilds": "waterbirds", "original": "celeba", "kaggle": "celeba"}


@pytest.fixture(scope="session")
def roots(tmp_path_factory) -> dict[str, Path]:
    """One data root per layout, each written once for the whole session."""
    base = tmp_path_factory.mktemp("roots")
    for layout, dataset in DATASET_OF.items():
        export(base / layout, dataset, (layout,), SCALE[dataset])
    return {layout: base / layout for layout in DATASET_OF}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("OILWATER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OILWATER_DATA_ROOT", raising=False)


def cfg(name: str, **kw) -> DatasetCfg:
    return DatasetCfg(name=name, size=S, **{"allow_count_mismatch": True, **kw})


def copy_root(roots, layout: str, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of a layout's data root to damage; returns (root, dataset folder)."""
    root = tmp_path / "root"
    shutil.copytree(roots[layout], root)
    return root, root / LOCATIONS[layout]


def one_line_error(pattern: str, fn, *args):
    with pytest.raises(UserError, match=pattern) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def synthetic_counts(dataset: str) -> dict[str, list[int]]:
    data = synthetic_source(dataset, SCALE[dataset], 12345)
    return {s: data.split(s).group_counts() for s in SPLITS}


# --- loading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(DATASET_OF))
def test_every_layout_loads(roots, layout):
    name = DATASET_OF[layout]
    data = load_dataset(cfg(name), roots[layout])
    assert data.name == name and data.mean == IMAGENET_MEAN
    assert (data.lrg1, data.lrg2, data.hrg) == ((2, 1, (0, 3)) if name == "waterbirds" else (3, None, (0, 1, 2)))
    expected = synthetic_counts(name)
    for s in SPLITS:
        split = data.split(s)
        assert split.group_counts() == expected[s]
        x = split.x()
        assert x.dtype == torch.uint8 and x.shape == (len(split), 3, S, S)
        assert x.float().std() > 10  # real pixels, not an empty cache
    assert sum(data.train_group_weights) == pytest.approx(1)
    assert data.train_group_weights[0] == pytest.approx(expected["train"][0] / sum(expected["train"]))


@pytest.mark.parametrize("layouts", [("group_dro", "wilds"), ("original", "kaggle")])
def test_both_layouts_give_the_same_data(roots, layouts):
    a, b = (load_dataset(cfg(DATASET_OF[lay]), roots[lay]) for lay in layouts)
    for s in SPLITS:
        assert torch.equal(a.split(s).x(), b.split(s).x())
        assert torch.equal(a.split(s).y, b.split(s).y) and torch.equal(a.split(s).a, b.split(s).a)


def test_data_root_from_env_and_nested_search(roots, monkeypatch):
    monkeypatch.setenv("OILWATER_DATA_ROOT", str(roots["group_dro"]))
    assert waterbirds.scan(roots["group_dro"]).folder.parts[-3:] == tuple(LOCATIONS["group_dro"].split("/"))
    assert len(load_dataset(cfg("waterbirds"), None).train) > 0
    # The dataset folder itself may be given as the root.
    assert waterbirds.scan(roots["wilds"] / "waterbirds_v1.0").layout == "WILDS"


def test_group_dro_layout_wins_over_wilds(roots, tmp_path):
    root = tmp_path / "both"
    for layout in ("wilds", "group_dro"):
        shutil.copytree(roots[layout], root, dirs_exist_ok=True)
    assert waterbirds.scan(root).layout == "group_DRO"


def test_grayscale_jpeg_becomes_rgb(roots):
    index = celeba.scan(roots["original"])
    gray = index.image_dir / index.files[0]
    with Image.open(gray) as img:
        assert img.mode == "L" and img.size[0] < img.size[1]
    x = decode(gray, crop_resize(S))
    assert x.shape == (3, S, S) and (x[0] == x[1]).all() and (x[1] == x[2]).all()


def test_fixture_images_vary_in_size(roots):
    index = waterbirds.scan(roots["group_dro"])
    sizes = {Image.open(index.image_dir / f).size for f in index.files[:20]}
    assert len(sizes) > 5 and all(w != h and 40 <= min(w, h) and max(w, h) <= 90 for w, h in sizes)


def test_transforms_match_torchvision():
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    for w, h in [(50, 70), (71, 44), (178, 218)]:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for size in (32, 224):
            ref_wb = T.Compose([T.Resize((round(size * 256 / 224),) * 2), T.CenterCrop(size)])(img)
            ref_ca = T.Compose([T.CenterCrop(min(w, h)), T.Resize((size, size))])(img)
            assert np.array_equal(np.asarray(resize_crop(size)(img)), np.asarray(ref_wb))
            assert np.array_equal(np.asarray(crop_resize(size)(img)), np.asarray(ref_ca))


def test_train_fraction_is_seeded_and_stratified(roots):
    full = load_dataset(cfg("celeba"), roots["kaggle"]).train.group_counts()
    a = load_dataset(cfg("celeba", train_fraction=0.5), roots["kaggle"])
    b = load_dataset(cfg("celeba", train_fraction=0.5), roots["kaggle"])
    assert a.train.group_counts() == [max(1, round(c / 2)) for c in full]
    assert torch.equal(a.train.x(), b.train.x())
    assert len(a.val) == len(load_dataset(cfg("celeba"), roots["kaggle"]).val)  # only train is subsampled


def test_cache_is_reused_without_decoding(roots, tmp_path, monkeypatch):
    first = load_dataset(cfg("waterbirds"), roots["wilds"])
    files = sorted((tmp_path / "cache" / "data").glob("*.npy"))
    assert len(files) == 3 and not list(files[0].parent.glob(".*.tmp.npy"))  # one per split, no temporary

    def no_decode(*_):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "decode", no_decode)
    second = load_dataset(cfg("waterbirds"), roots["wilds"])
    for s in SPLITS:
        assert torch.equal(first.split(s).x(), second.split(s).x())
    assert sorted((tmp_path / "cache" / "data").glob("*.npy")) == files


def test_threaded_decode_matches_and_reports_errors(roots, tmp_path, monkeypatch):
    inline = load_dataset(cfg("celeba"), roots["original"])
    monkeypatch.setattr(cache, "_PARALLEL_MIN", 1)
    monkeypatch.setenv("OILWATER_DECODE_WORKERS", "2")
    monkeypatch.setenv("OILWATER_CACHE", str(tmp_path / "cache2"))
    threaded = load_dataset(cfg("celeba"), roots["original"])
    assert torch.equal(inline.train.x(), threaded.train.x())
    root, _ = copy_root(roots, "original", tmp_path)
    index = celeba.scan(root)
    (index.image_dir / index.files[-1]).write_bytes(b"broken")
    monkeypatch.setenv("OILWATER_CACHE", str(tmp_path / "cache3"))  # same metadata would hit cache2
    one_line_error(f"cannot read image .*{index.files[-1]}", load_dataset, cfg("celeba"), root)
    assert not list((tmp_path / "cache3" / "data").glob("celeba-test-*.npy"))  # the failed split left nothing
    assert not list((tmp_path / "cache3" / "data").glob(".*.tmp.npy"))


def test_unwritable_cache_is_one_line(roots, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("OILWATER_CACHE", str(blocker))
    one_line_error(r"cannot write the image cache .*set OILWATER_CACHE", load_dataset, cfg("waterbirds"),
                   roots["wilds"])


def test_counts_matching_the_release_need_no_flag(roots, monkeypatch):
    for s, counts in synthetic_counts("waterbirds").items():
        monkeypatch.setitem(waterbirds.EXPECTED, s, tuple(counts))
    load_dataset(cfg("waterbirds", allow_count_mismatch=False), roots["group_dro"])


@pytest.mark.parametrize("name,layout", [("waterbirds", "group_dro"), ("celeba", "original")])
def test_count_mismatch_without_flag_is_one_line(roots, name, layout):
    c = synthetic_counts(name)["train"]
    exp = "/".join(map(str, (waterbirds.EXPECTED if name == "waterbirds" else celeba.EXPECTED)["train"]))
    pattern = f"train expected {exp} found {'/'.join(map(str, c))}, val .*--allow-count-mismatch"
    one_line_error(pattern, load_dataset, cfg(name, allow_count_mismatch=False), roots[layout])


# --- bad inputs ---------------------------------------------------------------------------------


def test_missing_data_root(tmp_path):
    one_line_error(r"data root .*nowhere does not exist or is not a folder; pass --data-root", load_dataset,
                   cfg("waterbirds"), tmp_path / "nowhere")


@pytest.mark.parametrize("name,pattern", [("waterbirds", "no Waterbirds under"), ("celeba", "no CelebA under")])
def test_dataset_absent_from_root(tmp_path, name, pattern):
    one_line_error(f"{pattern} .*download it", load_dataset, cfg(name), tmp_path)


def test_missing_metadata(roots, tmp_path):
    root, folder = copy_root(roots, "wilds", tmp_path)
    (folder / "metadata.csv").unlink()
    one_line_error(r"metadata.csv: file not found; .*re-extract", load_dataset, cfg("waterbirds"), root)


def _edit_csv(path: Path, edit) -> None:
    rows = list(csv.reader(path.open()))
    edit(rows)
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_waterbirds_bad_header(roots, tmp_path):
    root, folder = copy_root(roots, "group_dro", tmp_path)
    _edit_csv(folder / "metadata.csv", lambda rows: rows[0].__setitem__(4, "background"))
    one_line_error(r"metadata.csv: missing column 'place' \(header: img_id,img_filename,y,split,background",
                   load_dataset, cfg("waterbirds"), root)


def test_waterbirds_unknown_split_code(roots, tmp_path):
    root, folder = copy_root(roots, "group_dro", tmp_path)
    _edit_csv(folder / "metadata.csv", lambda rows: rows[3].__setitem__(3, "3"))
    one_line_error(r"metadata.csv line 4: split '3' is not one of 0, 1, 2; fix the file",
                   load_dataset, cfg("waterbirds"), root)


def test_missing_image(roots, tmp_path):
    root, folder = copy_root(roots, "group_dro", tmp_path)
    victim = waterbirds.scan(root).files[5]
    (folder / victim).unlink()
    one_line_error(f"image not found: .*{re.escape(victim)}; .*re-extract", load_dataset, cfg("waterbirds"), root)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_names_the_file(roots, tmp_path, damage):
    root, folder = copy_root(roots, "kaggle", tmp_path)
    index = celeba.scan(root)
    victim = index.image_dir / index.files[2]
    data = victim.read_bytes()
    victim.write_bytes(b"this is not a jpeg" if damage == "garbage" else data[: len(data) // 2])
    one_line_error(f"cannot read image .*{index.files[2]} .*replace the file", load_dataset, cfg("celeba"), root)


@pytest.mark.parametrize("layout", ["original", "kaggle"])
def test_celeba_bad_header(roots, tmp_path, layout):
    root, folder = copy_root(roots, layout, tmp_path)
    attr = next(folder.glob("list_attr_celeba.*"))
    attr.write_text(attr.read_text().replace("Blond_Hair", "Blonde", 1))
    one_line_error(rf"{attr.name}: missing column 'Blond_Hair'", load_dataset, cfg("celeba"), root)


@pytest.mark.parametrize("layout", ["original", "kaggle"])
def test_celeba_unknown_partition_code(roots, tmp_path, layout):
    root, folder = copy_root(roots, layout, tmp_path)
    part = next(folder.glob("list_eval_partition.*"))
    lines = part.read_text().splitlines()
    k = 1 if layout == "kaggle" else 0  # the csv has a header line
    lines[k + 2] = lines[k + 2][:-1] + "7"
    part.write_text("\n".join(lines) + "\n")
    one_line_error(rf"{part.name} line {k + 3}: partition '7' is not one of 0, 1, 2", load_dataset,
                   cfg("celeba"), root)


def test_celeba_attribute_not_plus_minus_one(roots, tmp_path):
    root, folder = copy_root(roots, "original", tmp_path)
    attr = folder / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    tokens = lines[4].split()
    tokens[1 + 20] = "0"  # Male
    lines[4] = " ".join(tokens)
    attr.write_text("\n".join(lines) + "\n")
    one_line_error(r"list_attr_celeba.txt line 5: Male '0' is not one of -1, 1", load_dataset, cfg("celeba"), root)


def test_celeba_count_line_disagrees(roots, tmp_path):
    root, folder = copy_root(roots, "original", tmp_path)
    attr = folder / "list_attr_celeba.txt"
    attr.write_text("".join(attr.read_text().splitlines(keepends=True)[:-3]))
    one_line_error(r"list_attr_celeba.txt: line 1 says \d+ images but \d+ are listed", load_dataset,
                   cfg("celeba"), root)


def test_celeba_missing_partition_entry_and_files(roots, tmp_path):
    root, folder = copy_root(roots, "original", tmp_path)
    part = folder / "list_eval_partition.txt"
    part.write_text("".join(part.read_text().splitlines(keepends=True)[1:]))
    one_line_error(r"list_eval_partition.txt: no partition for 000001.jpg", load_dataset, cfg("celeba"), root)
    shutil.rmtree(folder / "img_align_celeba")
    one_line_error(r"img_align_celeba: folder not found; extract img_align_celeba.zip", load_dataset,
                   cfg("celeba"), root)
    part.unlink()
    one_line_error(r"list_eval_partition.txt: file not found", load_dataset, cfg("celeba"), root)


def test_bad_train_fraction(roots):
    one_line_error(r"train_fraction must be in \(0, 1\]", load_dataset, cfg("celeba", train_fraction=0.0),
                   roots["kaggle"])


def test_torchvision_celeba_rejects_fixtures(roots):
    """Why we parse CelebA ourselves: torchvision MD5-checks the annotation files."""
    from torchvision.datasets import CelebA

    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CelebA(str(roots["original"]), split="train", target_type="attr", download=False)


# --- export format ------------------------------------------------------------------------------


def test_export_formats(roots):
    wb = roots["wilds"] / "waterbirds_v1.0"
    assert (wb / "metadata.csv").read_text().splitlines()[0] == "img_id,img_filename,y,split,place,place_filename"
    assert (wb / "RELEASE_v1.0.txt").is_file()
    assert re.fullmatch(r"1,\d{3}\.Synth_\w+/Synth_\w+_0001_\d+\.jpg,[01],[012],[01],/\w/\w+/synth_\d{8}\.jpg",
                        (wb / "metadata.csv").read_text().splitlines()[1])
    txt = (roots["original"] / "celeba" / "list_attr_celeba.txt").read_text().splitlines()
    n = int(txt[0])
    assert len(txt) == n + 2 and txt[1].endswith(" ") and len(txt[1].split()) == 40 and len(txt[2].split()) == 41
    kaggle = roots["kaggle"] / "celeba-dataset"
    assert (kaggle / "list_attr_celeba.csv").read_text().splitlines()[0].split(",")[:2] == ["image_id", "5_o_Clock_Shadow"]
    assert (kaggle / "list_eval_partition.csv").read_text().startswith("image_id,partition\n")
    assert len(list((kaggle / "img_align_celeba" / "img_align_celeba").glob("*.jpg"))) == n


def test_celeba_export_without_synth_celeba(monkeypatch):
    monkeypatch.delitem(DATASETS, "synth-celeba", raising=False)
    data = synthetic_source("celeba", 0.01, 1)
    assert data.lrg1 == 3 and all(c > 0 for s in SPLITS for c in data.split(s).group_counts())


# --- data check / data synth --------------------------------------------------------------------


def _fake_weights(tmp_path, monkeypatch) -> None:
    """Weights whose names carry their own sha256 prefix, as torchvision's do."""
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    names = {}
    for arch in ("resnet18", "resnet50"):
        body = arch.encode()
        name = f"{arch}-{hashlib.sha256(body).hexdigest()[:8]}.pth"
        (hub / "checkpoints" / name).write_bytes(body)
        names[arch] = name
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(data_tools, "WEIGHTS", names)


def test_check_reports_layouts_counts_and_weights(roots, tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    for layout in ("group_dro", "kaggle"):
        shutil.copytree(roots[layout], root, dirs_exist_ok=True)
    assert data_tools.main(["check", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "group_DRO layout" in out and "kaggle layout" in out and "MISMATCH, expected 3498/184/56/1057" in out
    assert "resnet18-f37072fd.pth: MISSING" in out or "resnet18-f37072fd.pth: ok" in out

    _fake_weights(tmp_path, monkeypatch)
    for name, module in (("waterbirds", waterbirds), ("celeba", celeba)):
        for s, counts in synthetic_counts(name).items():
            monkeypatch.setitem(module.EXPECTED, s, tuple(counts))
    assert data_tools.main(["check", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" not in out and out.strip().endswith("all datasets and weights present and valid")


def test_check_without_data(tmp_path, capsys):
    assert data_tools.main(["check", "--data-root", str(tmp_path / "nowhere")]) == 1
    out = capsys.readouterr().out
    assert "does not exist" in out and "Traceback" not in out


def test_synth_command(tmp_path, capsys):
    argv = ["synth", "--out", str(tmp_path), "--layout", "wilds", "--scale", "0.005"]
    assert data_tools.main(argv) == 0
    assert (tmp_path / "waterbirds_v1.0" / "RELEASE_v1.0.txt").is_file()
    assert not (tmp_path / "celeba").exists()
    assert waterbirds.scan(tmp_path).layout == "WILDS"
    assert data_tools.main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert data_tools.main(["synth", "--out", str(tmp_path), "--dataset", "celeba", "--layout", "wilds"]) == 2
    assert "not a celeba layout" in capsys.readouterr().err
    assert data_tools.main(["synth"]) == 2  # argparse: --out is required
