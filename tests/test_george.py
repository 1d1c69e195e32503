"""GEORGE and group DRO invariants: q is a distribution that moves to the worst group, k by silhouette,
uniform cluster sampling, the case interventions; plus the table1/table2 smoke runs."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from artifact.methods.george import apply_case, cluster_per_class, fit_clusters, smallest_cluster, worst_cluster_acc
from artifact.methods.group_dro import GroupDROLoss, group_mean_losses, uniform_group_index


def test_group_mean_losses_ignore_absent_groups():
    losses = group_mean_losses(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), 3)
    assert losses.tolist() == [2.0, 0.0, 5.0]


def test_dro_weights_are_a_distribution_and_move_to_the_worst_group():
    groups = torch.tensor([0] * 8 + [1] * 8)
    loss = GroupDROLoss(groups, torch.tensor([8, 8]), eta=0.5)
    logits = torch.zeros(16, 2)
    logits[:8, 0] = 5.0  # group 0 confidently right, group 1 at chance
    y = torch.zeros(16, dtype=torch.long)
    for _ in range(5):
        loss(logits, y, torch.arange(16))
        assert loss.q.sum().item() == pytest.approx(1.0)
    assert loss.q[1] > 0.5 > loss.q[0]


def test_size_adjustment_favours_small_groups_at_equal_loss():
    loss = GroupDROLoss(torch.tensor([0, 1]), torch.tensor([100, 4]), eta=0.1, size_adjustment=2.0)
    loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.arange(2))
    assert loss.q[1] > loss.q[0]


def test_dro_loss_is_the_q_weighted_group_loss():
    groups = torch.tensor([0, 1])
    loss = GroupDROLoss(groups, torch.tensor([1, 1]), eta=0.0)
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 0])
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert loss(logits, y, torch.arange(2)).item() == pytest.approx(per.mean().item())


def test_uniform_group_index_gives_every_group_an_equal_share():
    groups = torch.tensor([0] * 90 + [1] * 7 + [2] * 3)
    idx = uniform_group_index(groups, seed=0)
    counts = torch.bincount(groups[idx]).tolist()
    assert counts == [34, 34, 34]
    per_member = torch.bincount(idx, minlength=100)
    assert per_member[90:97].min() >= 4 and per_member[97:].min() == 11  # members cycled evenly
    assert torch.equal(idx, uniform_group_index(groups, seed=0))


@pytest.mark.parametrize("algo", ["gmm", "kmeans"])
def test_k_chosen_by_mean_cluster_silhouette(algo):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 0.05, n) for m, n in ((0, 200), (3, 120), (7, 30))])[:, None]
    model, keep, scores = fit_clusters(x, algo, 10, 3, seed=0)
    assert len(keep) == 3
    assert max(scores, key=lambda k: (scores[k], k)) == 3
    assert set(scores) <= set(range(2, 11))


def test_clusters_offset_per_class_and_val_assigned_by_its_class_model():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.05, 100), rng.normal(5, 0.05, 20), rng.normal(0, 0.05, 80),
                        rng.normal(-5, 0.05, 10)])[:, None]
    y = np.array([0] * 120 + [1] * 90)
    out = cluster_per_class(x, y, np.array([[5.0], [-5.0]]), np.array([0, 1]), "gmm", 4, 3, [0, 0])
    assert out["cluster_class"] == [0, 0, 1, 1]
    train = out["train"]
    assert set(train[:120].tolist()) == {0, 1} and set(train[120:].tolist()) == {2, 3}
    assert smallest_cluster(train) == int(train[-1])  # the 10 points at -5
    assert out["val"][0] == train[100] and out["val"][1] == train[-1]


def test_case_interventions():
    clusters = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 3, 3])  # cluster_class [0, 0, 1, 1]; smallest = 1
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    poison = torch.zeros(10, dtype=torch.bool)
    poison[[3, 8]] = True
    cls = [0, 0, 1, 1]
    assert apply_case(clusters, poison, y, cls, "standard").tolist() == clusters.tolist()
    assert apply_case(clusters, poison, y, cls, "worst")[[3, 8]].tolist() == [1, 1]
    ideal = apply_case(clusters, poison, y, cls, "ideal")
    assert ideal[3] == 0 and ideal[8] == 3 and (ideal == 1).sum() == 0


def test_worst_cluster_acc_weighted():
    pred, y = torch.tensor([1, 0, 0, 0]), torch.tensor([1, 1, 0, 0])
    clusters = torch.tensor([0, 0, 1, 1])
    assert worst_cluster_acc(pred, y, clusters, torch.ones(4, dtype=torch.float64)) == 50.0
    w = torch.tensor([3.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert worst_cluster_acc(pred, y, clusters, w) == 75.0


@pytest.mark.slow
def test_smoke_runs_table2_then_table1(tmp_path):
    """Table 1's jobs are Table 2's standard-case jobs: the second run only aggregates."""
    for target in ("table2", "table1"):
        out = subprocess.run([sys.executable, "-m", "artifact", target, "--preset", "smoke", "--results", str(tmp_path)],
                             capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert "-> SANE" in out.stdout  # complete and finite, including JTT x CelebA's LRG-2 shown as n/a
    n = int(out.stderr.split("table1: ")[1].split(" jobs")[0])
    assert f"({n} already done)" in out.stderr, out.stderr[-2000:]
