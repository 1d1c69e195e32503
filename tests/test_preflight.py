"""The preflight preset: the paper's code paths (data loaders, ResNet-18/50 at 224 px, every method,
attack and defense) end to end on small real-layout fixtures, and what guards it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from artifact.config import DatasetCfg, load_preset
from artifact.data import celeba, waterbirds
from artifact.data.export import LOCATIONS, RENDER_SIZE, write_celeba, write_waterbirds
from artifact.data.synthetic import build_synthetic
from artifact.grid import expand, load_table, table_names
from artifact.pipeline import targets as _targets

# Per split, per group (g0..g3): the fewest images that every code path accepts, so that `all` fits a
# CI budget at 224 px on the CPU. Waterbirds train >= 25 (preflight's FL users); test holds 5 GM targets
# of LRG-1's class; CelebA train is subsampled to 10 % by the preset (2/2/1/1 images).
FIXTURE = {
    "waterbirds": {"train": (10, 4, 4, 10), "val": (4, 4, 4, 4), "test": (4, 4, 4, 4)},
    "celeba": {"train": (20, 20, 10, 10), "val": (4, 4, 4, 4), "test": (4, 4, 4, 4)},
}


def write_fixtures(root: Path) -> Path:
    """Both data sets in their real layouts (Waterbirds group_DRO, CelebA original) under `root`."""
    cfg = DatasetCfg(size=RENDER_SIZE)
    wb = build_synthetic("waterbirds", FIXTURE["waterbirds"], cfg, 0, waterbirds.ROLES, FIXTURE["waterbirds"]["train"])
    ce = build_synthetic("celeba", FIXTURE["celeba"], cfg, 100, celeba.ROLES, FIXTURE["celeba"]["train"])
    for data, layout, writer in ((wb, "group_dro", write_waterbirds), (ce, "original", write_celeba)):
        folder = root / LOCATIONS[layout]
        folder.mkdir(parents=True)
        writer(data, folder, layout, 12345)
    return root


def _model_paths(preset: str) -> set[tuple]:
    """What the paper's code path depends on, per job: method, attack, data set, loader, arch, weights, px."""
    out = set()
    for name in table_names():
        for j in expand(load_table(name), load_preset(preset)):
            c = j.cfg
            out.add((name, c["method"]["name"], c["attack"]["name"], c["dataset"]["name"], c["case"],
                     c["model"]["arch"], c["model"]["pretrained"], c["dataset"]["size"]))
    return out


def test_preflight_runs_every_paper_combination_at_the_papers_models_and_resolution():
    paths = _model_paths("preflight")
    assert paths == _model_paths("paper")
    assert {p[5] for p in paths} == {"resnet18", "resnet50"} and {p[7] for p in paths} == {224}
    assert {p[6] for p in paths if p[5] == "resnet50"} == {True, False}


def _keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in tree.items():
        out.add(prefix + str(k))
        if isinstance(v, dict):
            out |= _keys(v, f"{prefix}{k}.")
    return out


def test_preflight_sets_every_key_the_paper_preset_sets():
    """A key added to paper.yaml (a fidelity fix) must be mirrored in preflight.yaml, or preflight would
    run the dataclass default instead of the paper's choice."""
    paper, preflight = load_preset("paper"), load_preset("preflight")
    for section in ("datasets", "model", "methods", "attacks"):
        missing = _keys(getattr(paper, section)) - _keys(getattr(preflight, section))
        assert not missing, f"{section}: {sorted(missing)} are in paper.yaml, not in preflight.yaml"
    assert not preflight.check.numbers and not preflight.check.claims and preflight.seeds == 1


@pytest.mark.parametrize("command,preset", [("table2", "paper"), ("table2", "quick"), ("report", "paper")])
def test_random_init_is_refused_outside_preflight(command, preset, tmp_path, run_cli):
    code, _, err = run_cli(command, "--preset", preset, "--allow-random-init", "--results", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --allow-random-init is for --preset preflight only")
    assert not (tmp_path / "jobs").exists()


def test_missing_weights_without_the_flag_is_the_usual_one_line_error(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, _, err = run_cli("table11", "--preset", "preflight", "--results", str(tmp_path / "results"),
                           "--data-root", str(tmp_path / "nowhere"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: pretrained resnet18 weights not found") and "--allow-random-init" in err
    assert not (tmp_path / "results" / "jobs").exists()


def test_random_init_rewrites_only_the_jobs_whose_weights_are_missing(tmp_path, monkeypatch):
    from artifact.grid import random_init
    from artifact.models import missing_weights, weight_path
    from artifact.pipeline import random_init_notice

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weight_path("resnet18").parent.mkdir(parents=True)
    weight_path("resnet18").write_bytes(b"")  # present: resnet18 jobs keep their weights
    jobs = [j for t in ("table2", "table8") for j in expand(load_table(t), load_preset("preflight"))]
    rewritten = random_init(jobs)
    assert missing_weights({"resnet18", "resnet50"}) == {"resnet50": weight_path("resnet50")}
    for old, new in zip(jobs, rewritten, strict=True):
        assert new.labels == old.labels
        was_pretrained_r50 = old.cfg["model"]["arch"] == "resnet50" and old.cfg["model"]["pretrained"]
        assert new.cfg["model"]["pretrained"] is (old.cfg["model"]["pretrained"] and not was_pretrained_r50)
        assert (new.id != old.id) is was_pretrained_r50  # a random-init result never passes for a pretrained one
    assert "resnet50" in random_init_notice(rewritten) and "RANDOM" in random_init_notice(rewritten)
    weight_path("resnet50").write_bytes(b"")
    assert "every ImageNet weights file was found" in random_init_notice(rewritten)


def test_a_cuda_run_names_its_gpu_amp_and_channels_last():
    from artifact.gpu import usage_line, usage_text
    from artifact.train import Runtime

    line = usage_text("cuda:0", "NVIDIA H200", (9, 0), Runtime(device="cuda:0").describe())
    assert line == "using cuda:0: NVIDIA H200 (compute capability 9.0), AMP bf16 autocast, channels_last on"
    assert usage_line("cpu") is None


@pytest.mark.slow
def test_preflight_all_runs_every_target_on_real_layout_fixtures(tmp_path, monkeypatch, run_cli):
    """Done means of issue 22: `all --preset preflight` on both data sets' real layouts, ResNet-18/50 at
    224 px from random init on the CPU; every target writes its table and a SANE verdict."""
    monkeypatch.setenv("OILWATER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights here, whatever the machine has
    root, results = write_fixtures(tmp_path / "data"), tmp_path / "results"
    t0 = time.time()
    code, out, err = run_cli("all", "--preset", "preflight", "--data-root", str(root), "--allow-count-mismatch",
                             "--allow-random-init", "--results", str(results), "--jobs", "1")
    print(f"preflight all: {time.time() - t0:.0f} s")
    assert code == 0, err
    assert "those jobs start from RANDOM initialisation" in err
    for name in _targets("all"):
        for suffix in (".md", ".csv", ".check.txt"):
            assert (results / "tables" / "preflight" / f"{name}{suffix}").is_file(), (name, suffix)
        verdict = (results / "tables" / "preflight" / f"{name}.check.txt").read_text()
        assert "-> SANE" in verdict, verdict  # SANE: no FAIL, no MISSING
    assert (results / "tables" / "preflight" / "figure1.png").is_file()
    assert "reviewer's report:" in out and (results / "report" / "preflight" / "index.html").is_file()
    found = [json.loads(p.read_text()) for p in (results / "jobs").glob("*/result.json")]
    configs = [r["config"] for r in found]
    # EPIC's selection ran (once: at the start of its second epoch), GM crafted its poisons.
    assert all(len(r["metrics"]["elmf_curve"]) == 1 for r in found if r["config"]["method"]["name"] == "epic")
    assert all(r["attack_info"]["n_poison"] >= 1 for r in found if r["config"]["attack"]["name"] == "gm")
    assert len(configs) == int(err.split("all: ")[1].split(" jobs")[0])
    for c in configs:
        assert c["dataset"]["name"] in ("waterbirds", "celeba") and c["dataset"]["size"] == 224
        assert not c["model"]["pretrained"]  # the job ids say random init
    assert {c["model"]["arch"] for c in configs} == {"resnet18", "resnet50"}  # which job has which: the test above
    # erm: the baseline target, part of `all`
    assert {c["method"]["name"] for c in configs} == {"erm", "jtt", "george", "epic", "epic_jtt", "strip", "fl"}
    assert {c["attack"]["name"] for c in configs} == {"dlbd", "sa", "gm", "none"}


@pytest.mark.slow
def test_the_report_finds_the_jobs_of_a_run_made_with_data_flags(tmp_path, monkeypatch, run_cli):
    """--allow-count-mismatch (like --real-data and --allow-random-init) changes the job ids; the report of
    that run, with the same flags, must read those jobs, not look for others."""
    monkeypatch.setenv("OILWATER_CACHE", str(tmp_path / "cache"))
    results = str(tmp_path / "results")
    assert run_cli("table11", "--preset", "smoke", "--allow-count-mismatch", "--results", results)[0] == 0
    code, out, err = run_cli("report", "--preset", "smoke", "--allow-count-mismatch", "--results", results)
    assert code == 0, err
    assert "table11" in (tmp_path / "results" / "report" / "smoke" / "index.md").read_text()
