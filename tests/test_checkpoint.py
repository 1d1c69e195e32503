"""Per-epoch checkpoints: a training run killed mid-way resumes with the numbers of an uninterrupted run."""

import pytest
import torch

from artifact.config import ModelCfg, TrainCfg
from artifact.methods.group_dro import GroupDROLoss
from artifact.models import build_model
from artifact.store import Store
from artifact.train import Runtime, predict, prepare, train

RT = Runtime(device="cpu", threads=1)


class Killed(Exception):
    pass


class DropTwo:
    """A stateful reindex hook like EPIC's pruner: permanently drops two positions per epoch."""

    def __init__(self, n: int):
        self.dropped = torch.zeros(n, dtype=torch.bool)

    def __call__(self, epoch, model):
        keep = (~self.dropped).nonzero().squeeze(1)
        gone = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(epoch))[:2]]
        self.dropped[gone] = True
        return (~self.dropped).nonzero().squeeze(1)

    def state_dict(self):
        return {"dropped": self.dropped}

    def load_state_dict(self, state):
        self.dropped = state["dropped"]


def _run(split, checkpoint=None, kill_at=None):
    torch.manual_seed(0)
    model = prepare(build_model(ModelCfg(arch="smallcnn", width=4), (0.5,) * 3, (0.25,) * 3), RT)
    loss = GroupDROLoss(split.g, torch.bincount(split.g, minlength=4), eta=0.5, size_adjustment=1.0)
    hook = DropTwo(len(split))

    def select(epoch, m):
        if epoch == kill_at:
            raise Killed
        acc = float((predict(m, split, RT).argmax(1) == split.y).float().mean())
        return acc, {"acc": acc}

    out = train(model, split, TrainCfg(epochs=5, lr=0.05, batch_size=16), 7, RT, select=select, loss_fn=loss,
                reindex=hook, record_epoch=3, checkpoint=checkpoint)
    return model.state_dict(), out, loss.log_q, hook.dropped


@pytest.mark.slow  # about 20 s per kill point on 2 cores: three trainings each
@pytest.mark.parametrize("kill_at", [1, 3, 4])
def test_a_killed_run_resumes_to_the_same_numbers(tmp_path, kill_at, toy_split):
    split = toy_split()
    ref_state, ref_out, ref_q, ref_dropped = _run(split)
    ckpt = tmp_path / "fit.partial.pt"
    with pytest.raises(Killed):
        _run(split, ckpt, kill_at)
    assert torch.load(ckpt, weights_only=True)["epoch"] == kill_at - 1  # the epochs before the kill are kept
    state, out, q, dropped = _run(split, ckpt)
    assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)
    assert out["history"] == ref_out["history"] and out["best_epoch"] == ref_out["best_epoch"]
    assert torch.equal(out["train_pass_pred"], ref_out["train_pass_pred"])
    assert torch.equal(q, ref_q) and torch.equal(dropped, ref_dropped)


def test_the_store_removes_the_checkpoint_with_the_finished_stage(tmp_path):
    store = Store(str(tmp_path))
    key = {"what": "fit"}
    partial = store.partial_path("fit", key)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"last epoch")
    assert store.stage("fit", key, lambda: {"x": 1}) == {"x": 1}
    assert store.has_stage("fit", key) and not partial.exists()
