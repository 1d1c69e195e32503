"""The grid is a pure function of table config and preset; job ids are content hashes."""

from artifact.config import load_preset
from artifact.grid import expand, filter_jobs, load_table


def test_expand_is_pure_and_content_addressed():
    table, preset = load_table("table2"), load_preset("tiny")
    a, b = expand(table, preset), expand(table, preset)
    assert [j.id for j in a] == [j.id for j in b]
    assert len({j.id for j in a}) == len(a)
    jtt_dlbd = [j for j in a if j.labels["method"] == "jtt" and j.labels["attack"] == "dlbd"
                and j.labels["dataset"] == "waterbirds"]
    assert len(jtt_dlbd) == 3 * preset.seeds  # worst / standard / ideal x seeds


def test_cases_share_their_preparation_key():
    jobs = [j for j in expand(load_table("table2"), load_preset("tiny"))
            if j.labels["method"] == "jtt" and j.labels["attack"] == "dlbd" and j.labels["dataset"] == "waterbirds"]
    by_seed = {}
    for j in jobs:
        by_seed.setdefault(j.labels["seed"], set()).add(j.share_key)
    assert all(len(keys) == 1 for keys in by_seed.values())
    assert len({k for keys in by_seed.values() for k in keys}) == len(by_seed)


def test_seed_count_override_and_filter():
    jobs = expand(load_table("table2"), load_preset("tiny"), seeds=1)
    assert {j.labels["seed"] for j in jobs} == {0}
    ideal = filter_jobs(jobs, ["case=ideal", "method=jtt"])
    assert ideal and all(j.labels["case"] == "ideal" for j in ideal)


def test_resolved_config_is_complete():
    job = expand(load_table("table2"), load_preset("paper"))[0]
    cfg = job.cfg
    assert cfg["model"] == {"arch": "resnet18", "pretrained": True, "width": 16}
    assert cfg["method"]["params"]["final"]["lr"] == 1e-5 and cfg["method"]["params"]["upweight"] == 100
    assert cfg["attack"]["params"]["rate"] == 0.01


def test_preset_can_replace_axis_values():
    preset = load_preset("tiny")
    table = load_table("table2")
    table = table.__class__(**{**table.__dict__, "grid": ({**table.grid[0], "method.upweight": [100, 150]},)})
    replaced = preset.__class__(**{**preset.__dict__, "tables": {"table2": {"method.upweight": [3]}}})
    jobs = expand(table, replaced)
    assert {j.cfg["method"]["params"]["upweight"] for j in jobs} == {3}


def test_preset_axis_mapping_rescales_each_block_separately():
    jobs = expand(load_table("table6"), load_preset("tiny"), seeds=1)
    rates = {(j.labels["method"], j.labels["attack.rate"]) for j in jobs}
    assert {r for m, r in rates if m == "george"} == {0.001, 0.002}  # GEORGE keeps its two rates, scaled
    assert {r for m, r in rates if m == "jtt"} == {0.0004, 0.0006, 0.0008, 0.001, 0.002}


def test_every_target_expands_under_every_preset():
    from artifact.config import PRESETS
    from artifact.grid import table_names

    for preset_name in PRESETS:
        preset = load_preset(preset_name)
        for name in table_names():
            jobs = expand(load_table(name), preset)
            assert jobs and all(j.labels["seed"] < preset.seeds for j in jobs), (preset_name, name)
