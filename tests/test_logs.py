"""Training says what it does: every job's log has one line per epoch (loss, validation WGA, seconds)."""

import re

from artifact.experiments import execute
from artifact.logs import LOG_NAME
from artifact.store import Store


def test_a_job_logs_each_epoch_of_each_training_with_loss_val_wga_and_seconds(tmp_path, smoke_job):
    cfg = smoke_job("jtt", "dlbd", scale=0.05)
    out = execute(cfg, str(tmp_path), {"device": "cpu", "threads": 1})
    assert out["status"] == "done"
    text = (Store(tmp_path).job_dir(out["id"]) / LOG_NAME).read_text()
    epochs = re.findall(r"epoch (\d+)/(\d+): loss (\d+\.\d+), val WGA (\S+), (\d+\.\d) s", text)
    p = cfg["method"]["params"]
    # identification: id.epochs + 1 (the official train pass) without selection; final: selected by val WGA
    assert len(epochs) == p["id"]["epochs"] + 1 + p["final"]["epochs"]
    assert [e[3] for e in epochs[: p["id"]["epochs"] + 1]] == ["-"] * (p["id"]["epochs"] + 1)
    assert all(float(e[3]) >= 0 for e in epochs[p["id"]["epochs"] + 1:])
    assert "stage jtt-id/" in text and "stage fit/" in text and f"job {out['id']}: done in" in text
