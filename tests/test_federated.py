"""Invariants of the FL defenses (docs/deviations.md, Table 9) and a table9 smoke run."""

from dataclasses import replace

import pytest
import torch

from artifact.config import TrainCfg
from artifact.data.base import Split
from artifact.defenses.federated import partition
from artifact.defenses.federated.aggregators import AGGREGATORS, AggCfg, median, topk_count, trimmed_mean
from artifact.defenses.federated.flat import flatten, float_keys, param_mask
from artifact.defenses.federated.simulation import FedCfg, simulate
from artifact.defenses.federated.sparsefed import sparsefed_step
from artifact.methods.fl import Params
from artifact.models import SmallCNN
from artifact.store import derive_seed
from artifact.train import Runtime


def _deltas(m=10, d=50, seed=0):
    return torch.randn(m, d, generator=torch.Generator().manual_seed(seed))


def test_sparsefed_with_k_all_equals_fedavg_exactly():
    is_param = torch.ones(50, dtype=torch.bool)
    is_param[-5:] = False  # BN statistics: the plain mean either way
    for rho in (0.0, 0.9):
        cfg, state = AggCfg(name="sparsefed", rho=rho, topk=45, topk_params=45), None
        for r in range(3):
            deltas = _deltas(seed=r)
            ours, state = AGGREGATORS["sparsefed"](deltas, is_param, state, cfg)
            fedavg, _ = AGGREGATORS["fedavg"](deltas, is_param, None, AggCfg())
            assert torch.equal(ours, fedavg)
            assert not state["e"].any() and not state["u"].any()


def test_sparsefed_conservation_without_momentum():
    d, k = 200, 7
    u, e = torch.zeros(d), torch.zeros(d)
    applied, total = torch.zeros(d), torch.zeros(d)
    for r in range(6):
        g = _deltas(1, d, seed=r)[0]
        delta, u, e = sparsefed_step(g, u, e, k, rho=0.0)
        assert int((delta != 0).sum()) == k
        applied += delta
        total += g
    torch.testing.assert_close(applied + e, total)


def test_sparsefed_keeps_the_largest_accumulated_coordinates():
    g = torch.tensor([0.1, -5.0, 0.2, 3.0, 0.0])
    delta, u, e = sparsefed_step(g, torch.zeros(5), torch.zeros(5), k=2, rho=0.9)
    assert torch.equal(delta, torch.tensor([0.0, -5.0, 0.0, 3.0, 0.0]))
    assert torch.equal(e, torch.tensor([0.1, 0.0, 0.2, 0.0, 0.0]))  # error feedback keeps the rest
    assert torch.equal(u, torch.tensor([0.1, 0.0, 0.2, 0.0, 0.0]))  # momentum masked where applied


def test_topk_keeps_the_resnet18_fraction():
    cfg = AggCfg(name="sparsefed")
    assert topk_count(cfg, 11177538) == 400000
    assert topk_count(cfg, 97938) == round(97938 * 400000 / 11177538)


def test_trimmed_mean():
    deltas = _deltas()
    assert torch.equal(trimmed_mean(deltas, 0), deltas.mean(0))
    planted = deltas.clone()
    planted[0], planted[1], planted[2], planted[3] = 1e6, -1e6, 1e6, -1e6  # 2 outliers at each end
    torch.testing.assert_close(trimmed_mean(planted, 2), deltas[4:].mean(0))
    with pytest.raises(ValueError):
        trimmed_mean(deltas[:4], 2)


def test_median_symmetric_and_even_count_convention():
    base = torch.randn(20)
    offsets = torch.tensor([-3.0, -1.0, -0.5, 0.5, 1.0, 3.0])[:, None]
    symmetric = base + offsets
    torch.testing.assert_close(median(symmetric), base)
    torch.testing.assert_close(median(symmetric), symmetric.mean(0))
    assert torch.equal(median(symmetric, midpoint=False), base - 0.5)  # torch's lower median
    odd = base + offsets[:5]
    assert torch.equal(median(odd), odd.sort(0).values[2])


def test_identical_clients_give_that_client():
    one = _deltas(1)[0]
    same = one.repeat(10, 1)
    is_param = torch.ones(50, dtype=torch.bool)
    for name, cfg in [("median", AggCfg(name="median")), ("trimmed-mean", AggCfg(name="trimmed-mean")),
                      ("fedavg", AggCfg())]:
        out, _ = AGGREGATORS[name](same, is_param, None, cfg)
        torch.testing.assert_close(out, one)


def test_non_iid_puts_every_minority_sample_on_ten_percent_of_users():
    g = torch.tensor([0] * 700 + [1] * 37 + [2] * 11 + [3] * 252)
    parts = partition.non_iid(g, (1, 2), users=20, minority_share=0.1, seed=3)
    assert sorted(torch.cat(parts).tolist()) == list(range(len(g)))  # a partition of every sample
    holders = [i for i, p in enumerate(parts) if torch.isin(g[p], torch.tensor([1, 2])).any()]
    assert len(holders) == 2
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    again = partition.non_iid(g, (1, 2), users=20, minority_share=0.1, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))


def test_iid_drops_the_remainder():
    parts = partition.iid(1003, 10, seed=0)
    assert [len(p) for p in parts] == [100] * 10
    assert len(torch.cat(parts).unique()) == 1000


def test_trimmed_mean_must_leave_a_client():
    from artifact.config import build
    from artifact.errors import UserError

    with pytest.raises(UserError, match="trimmed mean"):
        build(Params, {"fed": {"users": 10, "fraction": 0.3}, "agg": {"name": "trimmed-mean", "trim": 2}}, "p")
    with pytest.raises(UserError, match="sparsefed only"):
        build(Params, {"agg": {"name": "median", "rho": 0.9}}, "p")


def _toy():
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(120, 3, 8, 8, generator=gen) * 255).to(torch.uint8)
    y = torch.randint(0, 2, (120,), generator=gen)
    split = Split.from_tensor(x, y, torch.randint(0, 2, (120,), generator=gen))
    fed = FedCfg(users=6, fraction=0.5, rounds=3, local=TrainCfg(epochs=1, lr=0.05, wd=0.0, batch_size=16))
    return split, fed, partition.iid(120, 6, seed=0)


def _model():
    torch.manual_seed(0)
    return SmallCNN(width=4)


def test_integer_buffers_copied_not_averaged():
    split, fed, parts = _toy()
    model = _model()
    out = simulate(model, split, parts, replace(fed, rounds=2), AggCfg(name="median"), lambda *t: derive_seed(t),
                   Runtime())
    counts = {k: int(v) for k, v in out["state_dict"].items() if k.endswith("num_batches_tracked")}
    assert counts and set(counts.values()) == {2 * 2}  # 2 rounds x one client's 2 steps, copied
    keys = float_keys(out["state_dict"])
    assert "body.1.num_batches_tracked" not in keys
    mask = param_mask(model, keys)
    assert mask.sum() == sum(p.numel() for p in model.parameters()) < len(flatten(out["state_dict"], keys))


def test_resume_by_round_matches_uninterrupted(tmp_path):
    split, fed, parts = _toy()
    agg = AggCfg(name="sparsefed", rho=0.9)
    seed = lambda *t: derive_seed(t)  # noqa: E731
    full = simulate(_model(), split, parts, fed, agg, seed, Runtime())

    calls = []

    def crash_in_round_2(model):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {}

    ckpt = tmp_path / "rounds.pt"
    with pytest.raises(KeyboardInterrupt):
        simulate(_model(), split, parts, fed, agg, seed, Runtime(), checkpoint=ckpt, evaluate=crash_in_round_2)
    assert torch.load(ckpt, weights_only=True)["round"] == 0
    resumed = simulate(_model(), split, parts, fed, agg, seed, Runtime(), checkpoint=ckpt, evaluate=lambda m: {})
    assert [h["round"] for h in resumed["history"]] == [0, 1, 2]
    for k, v in full["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k


@pytest.mark.slow
def test_table9_smoke(run_cli, tmp_path):
    code, out, err = run_cli("table9", "--preset", "smoke", "--results", str(tmp_path))
    assert code == 0, out + err
    assert "WGA DROP" in (tmp_path / "tables" / "smoke" / "table9.md").read_text()
