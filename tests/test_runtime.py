"""Runtime speed switches must not change a CPU training run's numbers."""

import torch
import torch.utils.deterministic

from artifact.config import ModelCfg, TrainCfg
from artifact.models import build_model
from artifact.train import Runtime, predict, prepare, train


def _fit(split, fill: bool):
    rt = Runtime(device="cpu", threads=1)
    rt.setup()
    torch.utils.deterministic.fill_uninitialized_memory = fill  # setup() turns it off; the reference turns it on
    torch.manual_seed(0)
    model = prepare(build_model(ModelCfg(arch="smallcnn", width=4), (0.5,) * 3, (0.25,) * 3), rt)
    train(model, split, TrainCfg(epochs=2, lr=0.05, batch_size=16), 3, rt)
    return model.state_dict(), predict(model, split, rt)


def test_skipping_the_nan_fill_changes_no_number(toy_split):
    split = toy_split(64)
    old = (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory,
           torch.get_num_threads())
    try:
        ref_state, ref_logits = _fit(split, fill=True)
        state, logits = _fit(split, fill=False)
    finally:
        torch.use_deterministic_algorithms(old[0])
        torch.utils.deterministic.fill_uninitialized_memory = old[1]
        torch.set_num_threads(old[2])
    conv = state["net.body.0.weight"]
    assert conv.dim() == 4 and conv.is_contiguous(memory_format=torch.channels_last)  # the layout did change
    assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)
    assert torch.equal(logits, ref_logits)
