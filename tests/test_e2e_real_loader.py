"""`table2 --preset smoke --real-data` runs end to end on synthetic Waterbirds written in the real layout."""

import json

import pytest

ONLY = ["--only", "method=jtt", "--only", "dataset=waterbirds", "--only", "attack=dlbd"]


@pytest.mark.slow
def test_smoke_table2_through_the_real_loader(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("OILWATER_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    assert run_cli("data", "synth", "--out", str(root), "--dataset", "waterbirds", "--layout", "group_dro",
                   "--scale", "0.25")[0] == 0
    code, out, err = run_cli("table2", "--preset", "smoke", "--real-data", "--data-root", str(root),
                             "--allow-count-mismatch", "--results", str(tmp_path / "results"), *ONLY)
    assert code == 0, err
    assert "-> SANE" in out
    results = [json.loads(p.read_text()) for p in (tmp_path / "results" / "jobs").glob("*/result.json")]
    assert len(results) == 3 and all(r["config"]["dataset"]["name"] == "waterbirds" for r in results)


def test_missing_data_root_is_one_line_before_any_job(tmp_path, run_cli):
    code, _, err = run_cli("table2", "--preset", "smoke", "--real-data", "--data-root", str(tmp_path / "nowhere"),
                           "--results", str(tmp_path / "results"), *ONLY)
    assert code == 2 and err.startswith("error: data root") and err.count("\n") == 1
    assert not (tmp_path / "results" / "jobs").exists()
