"""The tree is ruff-clean (the style the project holds itself to)."""

import subprocess
import sys
from pathlib import Path


def test_ruff_clean():
    root = Path(__file__).parent.parent
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "artifact", "tests", "bench"], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
