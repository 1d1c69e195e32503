"""Atomic writes, content hashes, derived seeds, and stages computed once."""

import json
import os

import pytest
import torch

from artifact.store import Store, atomic_write_json, content_hash, derive_seed


def test_hash_and_seed_depend_on_content_not_order():
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert derive_seed("x", 1) == derive_seed("x", 1) != derive_seed("x", 2)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError):  # a complex key cannot be serialised: the write fails midway
        atomic_write_json(path, {1j: 2})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["r.json"]


def test_stage_is_computed_once(tmp_path):
    store, calls = Store(tmp_path), []

    def compute():
        calls.append(1)
        return {"error": torch.tensor([True, False]), "n": 3}

    a = store.stage("jtt-id", {"k": 1}, compute)
    b = store.stage("jtt-id", {"k": 1}, compute)
    assert len(calls) == 1 and b["n"] == 3 and torch.equal(a["error"], b["error"])
    store.stage("jtt-id", {"k": 2}, compute)
    assert len(calls) == 2


def test_result_done_marker(tmp_path):
    store = Store(tmp_path)
    assert not store.is_done("abc") and store.load_result("abc") is None
    store.write_result("abc", {"metrics": {"wga": 1.0, "acc": 2.0}})
    assert store.is_done("abc") and store.load_result("abc")["metrics"]["wga"] == 1.0


# --- issue 18: nothing silently wrong ---------------------------------------------------------------------------

GOOD = {"metrics": {"acc": 90.0, "wga": 70.0}}


@pytest.mark.parametrize("raw, why", [
    (b'{"id": "abc", "metrics": {"acc": 9', "is not valid JSON"),
    (b"\xff\xfe\x00garbage", "is not text"),
    (b"{}", "carries no job id"),
    (b"[1, 2]", "is not a result"),
    (b'{"id": "other", "metrics": {"acc": 1, "wga": 1}}', "holds the result of job other, not of abc"),
    (b'{"id": "abc", "config": {"x": 1}, "metrics": {"acc": 1, "wga": 1}}', "has a config hashing to"),
    (b'{"id": "abc"}', "has no metrics"),
    (b'{"id": "abc", "metrics": {"acc": 1.0, "accc": 2.0}}', "lacks the metrics wga"),
])
def test_a_damaged_result_is_not_done_and_is_set_aside(tmp_path, raw, why):
    store = Store(tmp_path)
    path = store.result_path("abc")
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)
    assert not store.is_done("abc") and store.load_result("abc") is None
    assert store.read_result("abc")[1].startswith(why)
    assert store.damaged(["abc", "absent"]) == [(path, store.read_result("abc")[1])]
    aside, reason = store.set_aside("abc")
    assert reason.startswith(why) and aside.read_bytes() == raw and not path.exists()
    assert store.set_aside("abc") is None  # nothing left to move


def test_a_result_is_stamped_with_its_id_and_clears_the_old_error(tmp_path):
    store = Store(tmp_path)
    (store.job_dir("abc")).mkdir(parents=True)
    (store.job_dir("abc") / "error.txt").write_text("Traceback ...\nValueError: first attempt\n")
    store.write_result("abc", GOOD)
    assert store.load_result("abc")["id"] == "abc" and not (store.job_dir("abc") / "error.txt").exists()
    assert store.set_aside("abc") is None


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04garbage", "half", "pickle", "other-stage"])
def test_a_damaged_stage_is_recomputed_and_named(tmp_path, capsys, damage):
    store, calls = Store(tmp_path), []

    def compute():
        calls.append(1)
        return {"n": 3}

    store.stage("fit", {"k": 1}, compute)
    path = store.stage_path("fit", {"k": 1})
    if damage == "half":
        damage = path.read_bytes()[: path.stat().st_size // 2]
    elif damage == "pickle":
        import pickle

        damage = pickle.dumps({"value": os.system})
    elif damage == "other-stage":
        store.stage("fit", {"k": 2}, compute)
        damage = store.stage_path("fit", {"k": 2}).read_bytes()
    path.write_bytes(damage)
    before = len(calls)
    assert store.stage("fit", {"k": 1}, compute) == {"n": 3} and len(calls) == before + 1  # recomputed
    err = capsys.readouterr().err
    assert f"warning: stage {path}: " in err and "recomputing it" in err and "weights_only" not in err
    assert store.stage("fit", {"k": 1}, compute) == {"n": 3}  # stored again, whole


def test_the_numerics_are_part_of_every_stage_key(tmp_path):
    a, b = Store(tmp_path, {"device": "cpu", "threads": 1}), Store(tmp_path, {"device": "cpu", "threads": 2})
    assert a.stage_path("fit", {"k": 1}) != b.stage_path("fit", {"k": 1})
    assert a.stage("fit", {"k": 1}, lambda: {"t": 1}) == {"t": 1}
    assert b.stage("fit", {"k": 1}, lambda: {"t": 2}) == {"t": 2}  # another thread count: its own stage
    assert Store(tmp_path).stage_path("fit", {"k": 1}) not in (a.stage_path("fit", {"k": 1}),
                                                               b.stage_path("fit", {"k": 1}))


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_honour_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_json(tmp_path / "r.json", {"ok": 1})
        Store(tmp_path).stage("fit", {"k": 1}, lambda: {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode
    assert Store(tmp_path).stage_path("fit", {"k": 1}).stat().st_mode & 0o777 == mode
