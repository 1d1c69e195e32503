import pytest

from artifact.config import load_preset


@pytest.fixture
def smoke_preset():
    return load_preset("smoke")


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from artifact.cli import main

    def run(*argv):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
