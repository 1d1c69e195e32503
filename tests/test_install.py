"""The package is an editable install (pip install -e .), built offline by the lock's setuptools; no .pth link."""

import importlib.metadata
import json
import re
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_lock_pins_a_build_backend_that_builds_editable_wheels_without_wheel():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M))
    major, minor = (int(x) for x in pins["setuptools"].split(".")[:2])
    assert (major, minor) >= (70, 1)  # older ones need the `wheel` package for an editable wheel
    assert 'requires = ["setuptools>=70.1"]' in (ROOT / "pyproject.toml").read_text()


def test_this_environment_has_the_checkout_installed_editable_and_no_pth_link():
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert "--no-build-isolation" in script and "-e \"$repo_root\"" in script
    direct = json.loads(importlib.metadata.distribution("oilwater").read_text("direct_url.json"))
    assert direct["dir_info"].get("editable") is True
    assert direct["url"] == f"file://{ROOT}"
    assert not (Path(sysconfig.get_paths()["purelib"]) / "oilwater-checkout.pth").exists()
