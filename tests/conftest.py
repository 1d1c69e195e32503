import pytest
import torch

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
