"""STRIP: entropy of constant and uniform outputs, blending, the clean-input threshold; smoke run of Table 11 (slow)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from artifact.data.base import Split
from artifact.defenses import strip
from artifact.train import Runtime

ROOT = Path(__file__).parent.parent


class Constant(nn.Module):
    """A model whose logits ignore the input."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def _split(n=6, value=0):
    return Split.from_tensor(torch.full((n, 3, 4, 4), value, dtype=torch.uint8), torch.zeros(n), torch.zeros(n))


@pytest.mark.parametrize(("logits", "bits"), [([0.0, 0.0], 1.0), ([50.0, -50.0], 0.0), ([0.0, 0.0, 0.0, 0.0], 2.0)])
def test_entropy_of_a_constant_output_model(logits, bits):
    h = strip.strip_entropy(Constant(logits), _split(), torch.arange(6), _split(value=9), 5,
                            torch.Generator().manual_seed(0), Runtime(), chunk=4)
    assert h.shape == (6,) and torch.allclose(h, torch.full((6,), bits, dtype=torch.float64), atol=1e-9)


def test_blend_is_a_clipped_pixel_sum():
    x = torch.tensor([[[[10, 200]]]], dtype=torch.uint8)
    over = torch.tensor([[[[[20, 100]]], [[[0, 0]]]]], dtype=torch.uint8)
    assert strip.blend(x, over).tolist() == [[[[[30, 255]]], [[[10, 200]]]]]


def test_threshold_is_the_frr_quantile_of_clean_entropies():
    clean = torch.randn(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1 + 0.9
    thr = strip.threshold(clean, 0.01)
    assert abs(float((clean < thr).double().mean()) - 0.01) < 0.003


def test_a_backdoored_model_has_lower_entropy_on_triggered_inputs():
    class Backdoor(nn.Module):  # predicts class 1 with certainty when the top-left pixel is bright
        def forward(self, x):
            trig = (x[:, 0, 0, 0] > 0.9).float() * 40
            noise = x.mean((1, 2, 3)) * 4 - 2
            return torch.stack([noise, -noise + trig], 1)

    pool = Split.from_tensor(torch.randint(0, 120, (50, 3, 4, 4), generator=torch.Generator().manual_seed(1),
                                           dtype=torch.uint8), torch.zeros(50), torch.zeros(50))
    clean = pool.x(torch.arange(10))
    trig = clean.clone()
    trig[:, :, 0, 0] = 255
    gen = torch.Generator().manual_seed(0)
    h_clean = strip.strip_entropy(Backdoor(), Split.from_tensor(clean, torch.zeros(10), torch.zeros(10)),
                                  torch.arange(10), pool, 8, gen, Runtime())
    h_trig = strip.strip_entropy(Backdoor(), Split.from_tensor(trig, torch.zeros(10), torch.zeros(10)),
                                 torch.arange(10), pool, 8, gen, Runtime())
    assert h_trig.mean() < h_clean.mean()


@pytest.mark.slow
def test_smoke_table11(tmp_path):
    cmd = [sys.executable, "-m", "artifact", "table11", "--preset", "smoke", "--results", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "POISONS" in out.stdout and "-> SANE" in out.stdout
