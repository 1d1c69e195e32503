import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, settings

from artifact.config import load_preset

# Property tests (tests/test_properties.py): the fast lane runs the same 60 examples every time (derandomized:
# a commit's verdict does not depend on luck); `pytest --hypothesis-profile=explore` searches for new failures.
# No time limits: the machine is shared, and a slow example is not a wrong one.
settings.register_profile("fast", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fast")


def pytest_collection_modifyitems(items):
    """Mark every test not marked slow as fast, so that `-m fast` and `-m "not slow"` are the same lane."""
    for item in items:
        if item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)


@pytest.fixture
def smoke_preset():
    return load_preset("smoke")


# Settings under which a method's stages differ from each other (smoke's FL defends with FedAvg, the baseline).
SMOKE_JOB_OVERRIDES = {"fl": {"method.agg.name": "trimmed-mean"}}


@pytest.fixture
def smoke_job():
    """`smoke_job(method, attack, scale=0.1, model=None)`: the resolved config of one smoke job of the pair
    (standard case, seed 0) on a fraction of the synthetic Waterbirds (`model` overrides the model section):
    seconds."""
    from artifact.grid import resolve
    from artifact.methods import METHODS

    def make(method: str, attack: str, scale: float = 0.1, model: dict | None = None) -> dict:
        smoke = load_preset("smoke")
        preset = smoke.__class__(**{**smoke.__dict__, "datasets": {
            "waterbirds": {**smoke.datasets["waterbirds"], "scale": scale}},
            "model": {"default": {**smoke.model["default"], **(model or {})}}})
        cases = METHODS[method].cases
        point = {"method": method, "attack": attack, "dataset": "waterbirds", "seed": 0,
                 "case": "standard" if "standard" in cases else cases[0], **SMOKE_JOB_OVERRIDES.get(method, {})}
        return resolve(point, preset, f"{method} x {attack}")

    return make


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from artifact.cli import main

    def run(*argv):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def toy_split():
    """A tiny learnable split (class 1 has a white corner), for tests of the training loop itself."""
    from artifact.data.base import Split

    def make(n: int = 96) -> Split:
        gen = torch.Generator().manual_seed(0)
        y = torch.randint(0, 2, (n,), generator=gen)
        a = torch.randint(0, 2, (n,), generator=gen)
        x = (torch.rand(n, 3, 16, 16, generator=gen) * 255).to(torch.uint8)
        x[y == 1, :, :4, :4] = 255
        return Split.from_tensor(x, y, a)

    return make


@pytest.fixture
def golden_env(monkeypatch, tmp_path):
    """The golden configs, expected results and a writer of tests/golden/results.json (optionally edited)."""
    golden = Path(__file__).parent / "golden"
    monkeypatch.setenv("OILWATER_CONFIGS", str(golden / "configs"))
    monkeypatch.setenv("OILWATER_EXPECTED", str(golden / "expected"))
    from artifact.grid import expand, load_table
    from artifact.store import Store

    jobs = {json.dumps(j.labels, sort_keys=True): j for j in expand(load_table("table2"), load_preset("paper"))}
    store = Store(tmp_path / "results")

    def write(edit=lambda labels, metrics: metrics, skip=()):
        for r in json.loads((golden / "results.json").read_text()):
            key = json.dumps(r["labels"], sort_keys=True)
            if key not in skip:
                store.write_result(jobs[key].id, {"metrics": edit(r["labels"], dict(r["metrics"]))})

    return store, write


@pytest.fixture
def long_smoke_configs(tmp_path):
    """configs/ (in tmp_path) whose smoke JTT final training lasts `epochs` epochs, tens of seconds: long
    enough to interrupt a job inside its training. Returns the environment that selects them."""

    def make(epochs: int) -> dict:
        dst = tmp_path / "configs"
        shutil.copytree(Path(__file__).resolve().parent.parent / "configs", dst)
        smoke = dst / "presets" / "smoke.yaml"
        preset = yaml.safe_load(smoke.read_text())
        preset["methods"]["jtt"]["final"]["epochs"] = epochs
        smoke.write_text(yaml.safe_dump(preset))
        return {"OILWATER_CONFIGS": str(dst)}

    return make
