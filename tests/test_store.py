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
