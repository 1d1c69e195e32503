"""A new method is one file: tests/plugins/toy_method.py, loaded through OILWATER_PLUGINS with a table of
its own (OILWATER_CONFIGS), runs through a smoke grid, --dry-run, the checker and status; no file of the
artifact is edited."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = Path(__file__).resolve().parent / "plugins" / "toy_method.py"
TABLE = """title: "Toy: a method from tests/plugins"
description: toy method under no attack and DLBD
rows: [method, attack]
metrics: [acc, wga]
grid:
  - {method: toy, dataset: waterbirds, attack: [none, dlbd]}
"""


@pytest.fixture
def toy_configs(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs" / "presets", configs / "presets")
    (configs / "table99.yaml").write_text(TABLE)
    monkeypatch.setenv("OILWATER_CONFIGS", str(configs))
    monkeypatch.setenv("OILWATER_PLUGINS", str(TOY))
    return tmp_path


def test_an_unknown_plugin_file_is_one_line(monkeypatch, run_cli, toy_configs):
    monkeypatch.setenv("OILWATER_PLUGINS", str(toy_configs / "missing.py"))
    code, _, err = run_cli("table99", "--preset", "smoke", "--dry-run", "--results", str(toy_configs / "r"))
    assert code == 2 and "OILWATER_PLUGINS:" in err and "missing.py: file not found" in err


def test_a_plugin_that_lacks_a_member_of_its_protocol_is_one_line(monkeypatch, run_cli, toy_configs):
    bad = toy_configs / "bad_method.py"
    bad.write_text(TOY.read_text().replace("    def stages(", "    def not_stages("))
    monkeypatch.setenv("OILWATER_PLUGINS", str(bad))
    code, _, err = run_cli("table99", "--preset", "smoke", "--dry-run", "--results", str(toy_configs / "r"))
    assert code == 2 and err.startswith("error: method 'toy' lacks stages (artifact/protocols.py: Method)"), err


@pytest.mark.slow
def test_a_toy_method_from_tests_runs_through_grid_dry_run_checker_and_status(run_cli, toy_configs):
    results = str(toy_configs / "results")
    code, out, _ = run_cli("--list")
    assert code == 0 and "table99" in out and "6 (tiny)" in out  # 2 attacks x 3 seeds
    code, out, _ = run_cli("table99", "--preset", "smoke", "--dry-run", "--results", results)
    assert code == 0 and "table99" in out and "0/2" in out
    code, out, err = run_cli("table99", "--preset", "smoke", "--results", results, "--jobs", "1", "--threads", "1")
    assert code == 0, err[-2000:]
    assert "SANE" in out and "NOT SANE" not in out
    code, out, _ = run_cli("check", "table99", "--preset", "smoke", "--results", results)
    assert code == 0 and "SANE" in out
    code, out, _ = run_cli("status", "table99", "--preset", "smoke", "--results", results)
    assert code == 0 and "2 done" in out
    code, out, _ = run_cli("table99", "--preset", "smoke", "--dry-run", "--results", results)
    assert code == 0 and "2 done" in out and "priced from recorded wall times" in out


@pytest.mark.slow
def test_results_describe_themselves_a_changed_preset_default_keeps_them(run_cli, toy_configs):
    """The run records its jobs (labels, configs) in the results folder; check and status read them, so a
    preset edited after the run does not turn finished results into MISSING."""
    import yaml

    results = str(toy_configs / "results")
    code, _, err = run_cli("table99", "--preset", "smoke", "--results", results, "--jobs", "1", "--threads", "1",
                           "--only", "attack=none")
    assert code == 0, err[-2000:]
    smoke = toy_configs / "configs" / "presets" / "smoke.yaml"
    data = yaml.safe_load(smoke.read_text())
    data["methods"]["toy"] = {"final": {"epochs": 3}}  # a new default: other job ids from now on
    smoke.write_text(yaml.safe_dump(data))
    code, out, _ = run_cli("check", "table99", "--preset", "smoke", "--results", results, "--only", "attack=none")
    assert code == 0 and "0 MISSING -> SANE" in out
    code, out, _ = run_cli("status", "table99", "--preset", "smoke", "--results", results, "--only", "attack=none")
    assert code == 0 and "1 done" in out
    (toy_configs / "results" / "tables" / "smoke" / "table99.only.attack=none.jobs.json").unlink()
    code, out, _ = run_cli("status", "table99", "--preset", "smoke", "--results", results, "--only", "attack=none")
    assert code == 0 and "1 pending" in out  # without the record: the grid as the files say now
