"""The grid is a pure function of table config and preset; job ids are content hashes."""

import json

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
    preset = load_preset("tiny")
    scaled = {0.004: 0.0004, 0.006: 0.0006, 0.008: 0.0008, 0.01: 0.001, 0.02: 0.002}
    preset = preset.__class__(**{**preset.__dict__, "tables": {"table6": {"attack.rate": scaled}}})
    jobs = expand(load_table("table6"), preset, seeds=1)
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


def test_targets_are_listed_baseline_then_tables_in_numeric_order():
    from artifact.grid import table_names

    names = table_names()
    assert names[:4] == ["baseline", "table1", "table2", "table3"] and names.index("table9") < names.index("table10")
    tables = [n for n in names if n.startswith("table")]
    assert names[1: 1 + len(tables)] == tables and "figure1" in names[1 + len(tables):]  # then the rest


BLOCK = "  - {method: jtt, dataset: waterbirds, attack: dlbd}\n"


def _table_yaml(tmp_path, grid: str = BLOCK, rows: str = "[method]", metrics: str = "[wga]", extra: str = "",
                name: str = "table99"):
    """A table config file in tmp_path (`extra`: more top-level keys, one per line)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"title: t\ndescription: d\nrows: {rows}\nmetrics: {metrics}\n{extra}grid:\n{grid}")
    return path


def _table(tmp_path, grid: str, name: str = "table99"):
    _table_yaml(tmp_path, grid, name=name)
    return load_table(name, tmp_path)


def test_grid_blocks_must_be_mappings_with_the_core_axes(tmp_path):
    import pytest

    from artifact.errors import UserError

    with pytest.raises(UserError, match=r"table99.yaml.grid\[0\]: expected dict, got 'jtt'"):  # caught by build()
        _table(tmp_path, "  - jtt\n")
    with pytest.raises(UserError, match=r"table99.yaml: grid\[1\].attack: required axis missing"):
        _table(tmp_path, "  - {method: jtt, dataset: waterbirds, attack: dlbd}\n  - {method: jtt, dataset: waterbirds}\n")
    table = _table(tmp_path, "  - {method: jtt, dataset: waterbirds, attack: dlbd, model.width: 8}\n")  # case optional
    jobs = expand(table, load_preset("smoke"))
    assert {j.labels["case"] for j in jobs} == {"standard"} and {j.cfg["model"]["width"] for j in jobs} == {8}


def test_resolve_names_the_missing_preset_entry_or_case(tmp_path):
    import pytest

    from artifact.errors import UserError

    smoke = load_preset("smoke")
    bad_case = _table(tmp_path, "  - {method: jtt, dataset: waterbirds, attack: dlbd, case: best}\n")
    with pytest.raises(UserError, match=r"grid\[0\]: method 'jtt' has no case 'best' \(valid: worst, standard, ideal\)"):
        expand(bad_case, smoke)
    no_dataset = smoke.__class__(**{**smoke.__dict__, "datasets": {"celeba": smoke.datasets["celeba"]}})
    with pytest.raises(UserError, match=r"grid\[0\]: dataset 'waterbirds' has no entry in the preset \(valid: celeba\)"):
        expand(_table(tmp_path, BLOCK), no_dataset)
    with pytest.raises(UserError, match=r"grid\[0\].method.upweight.x: cannot set upweight.x: upweight is not a section"):
        expand(_table(tmp_path, "  - {method: jtt, dataset: waterbirds, attack: dlbd, method.upweight.x: 1}\n"), smoke)


def test_by_dataset_settings_override_the_section_and_no_attack_has_no_params():
    jobs = expand(load_table("table9"), load_preset("smoke"), seeds=1)
    assert jobs and all(j.cfg["attack"] == {"name": "none", "params": {}} for j in jobs)
    preset = load_preset("tiny")
    section = {"jtt": {"upweight": 5, "by_dataset": {"celeba": {"upweight": 50}}}}
    tuned = preset.__class__(**{**preset.__dict__, "methods": {**preset.methods, **{
        "jtt": {**preset.methods["jtt"], **section["jtt"]}}}})
    ups = {j.labels["dataset"]: j.cfg["method"]["params"]["upweight"] for j in expand(load_table("table2"), tuned, 1)
           if j.labels["method"] == "jtt"}
    assert ups == {"waterbirds": 5, "celeba": 50}


def test_a_job_listed_twice_runs_once_and_filters_compare_as_strings():
    table = load_table("table2")
    twice = table.__class__(**{**table.__dict__, "grid": (table.grid[0], table.grid[0])})
    assert [j.id for j in expand(twice, load_preset("smoke"))] == [j.id for j in expand(
        table.__class__(**{**table.__dict__, "grid": (table.grid[0],)}), load_preset("smoke"))]
    jobs = expand(table, load_preset("tiny"))
    assert {j.labels["seed"] for j in filter_jobs(jobs, ["seed=1"])} == {1}  # labels are ints, --only strings
    assert filter_jobs(jobs, []) == jobs


def test_by_dataset_merges_nested_sections_and_a_dotted_override_leaves_the_preset_alone():
    paper = load_preset("paper")
    jtt = {j.labels["dataset"]: j.cfg["method"]["params"] for j in expand(load_table("table2"), paper, 1)
           if j.labels["method"] == "jtt" and j.labels["case"] == "standard" and j.labels["attack"] == "dlbd"}
    wb, ca = jtt["waterbirds"]["id"], jtt["celeba"]["id"]
    assert (ca["epochs"], ca["wd"]) == (1, 0.1) and ca["lr"] == wb["lr"] and ca["batch_size"] == wb["batch_size"]
    table = load_table("table2")
    blocks = ({**table.grid[0], "method.id.epochs": 77}, table.grid[0])  # the override must not leak to block 1
    jobs = expand(table.__class__(**{**table.__dict__, "grid": blocks}), paper, 1)
    epochs = {j.cfg["method"]["params"]["id"]["epochs"] for j in jobs}
    assert 77 in epochs and paper.methods["jtt"]["id"]["epochs"] in epochs and len(epochs) == 2


def test_preset_axis_mapping_keeps_unmapped_values_and_maps_lists():
    preset, table = load_preset("tiny"), load_table("table2")
    table = table.__class__(**{**table.__dict__, "grid": ({**table.grid[0], "method.upweight": [100, 150]},)})
    mapped = preset.__class__(**{**preset.__dict__, "tables": {"table2": {"method.upweight": {100: 3}}}})
    assert {j.cfg["method"]["params"]["upweight"] for j in expand(table, mapped, 1)} == {3, 150}


def test_errors_name_every_valid_choice_and_the_grid_block(tmp_path):
    import pytest

    from artifact.errors import UserError

    smoke = load_preset("smoke")
    two = {"celeba": smoke.datasets["celeba"], "other": smoke.datasets["celeba"]}
    with pytest.raises(UserError, match=r"dataset 'waterbirds' has no entry in the preset \(valid: celeba, other\)"):
        expand(_table(tmp_path, BLOCK), smoke.__class__(**{**smoke.__dict__, "datasets": two}))
    with pytest.raises(UserError, match=r"table99.yaml: grid\[0\]: method: unknown method 'jtx'"):
        expand(_table(tmp_path, "  - {method: jtx, dataset: waterbirds, attack: dlbd}\n"), smoke)
    with pytest.raises(UserError, match=r"table99.yaml: grid\[0\]: attack: unknown attack 'dlbx'"):
        expand(_table(tmp_path, "  - {method: jtt, dataset: waterbirds, attack: dlbx}\n"), smoke)
    with pytest.raises(UserError, match=r"grid\[0\]: method.idd: unknown key"):  # a new section is a config error
        expand(_table(tmp_path, "  - {method: jtt, dataset: waterbirds, attack: dlbd, method.idd.epochs: 1}\n"), smoke)
    jobs = expand(load_table("table2"), smoke)
    with pytest.raises(UserError, match=r"--only attack=dl=bd: no job has attack 'dl=bd' \(valid: dlbd, sa, gm\)"):
        filter_jobs(jobs, ["attack=dl=bd"])
    with pytest.raises(UserError, match=r"--only colour=\.\.\.: unknown key \(valid: attack, case, dataset, method, seed\)"):
        filter_jobs(jobs, ["colour=red"])


def test_a_plugin_the_preset_does_not_list_runs_with_its_params_defaults(tmp_path):
    from artifact.methods import METHODS

    smoke = load_preset("smoke")
    bare = smoke.__class__(**{**smoke.__dict__, "methods": {}, "attacks": {}})
    job = expand(_table(tmp_path, BLOCK), bare)[0]
    assert job.cfg["method"]["params"]["upweight"] == METHODS["jtt"].Params().upweight
    assert job.cfg["attack"]["params"]["rate"] == 0.01  # DLBD's Params() default, not the preset's


def test_count_equals_the_expanded_job_count_for_every_target_and_preset():
    """`--list` counts jobs without importing a plugin (grid.count); it must say what expand gives."""
    from artifact.config import PRESETS
    from artifact.grid import count, table_names

    for preset_name in PRESETS:
        preset = load_preset(preset_name)
        for name in table_names():
            table = load_table(name)
            assert count(table, preset) == len(expand(table, preset)), (preset_name, name)


def test_grid_and_list_import_no_plugin_and_no_torch():
    """Expanding a grid loads only the plugins it names; listing the targets loads none (no torch)."""
    import subprocess
    import sys

    code = ("import sys, artifact.grid, artifact.cli\n"
            "from artifact.cli import main\n"
            "assert main(['--list']) == 0\n"
            "heavy = [m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules]\n"
            "plugins = [m for m in sys.modules if m.startswith(('artifact.methods.', 'artifact.attacks.'))]\n"
            "assert not heavy and not plugins, (heavy, plugins)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "table2" in done.stdout


def test_a_broken_plugin_breaks_only_the_commands_that_use_it(tmp_path, monkeypatch):
    """A syntax error in one method is one line naming its file, raised only when that method is used."""
    import pytest

    from artifact.errors import UserError
    from artifact.registry import Registry

    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("from plugpkg import R\nR.register('good')(1)\n")
    (pkg / "bad.py").write_text("from plugpkg import R\nR.register('bad')(\n")
    (pkg / "__init__.py").write_text("from artifact.registry import Registry\nR = Registry('plugin', __name__)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugpkg

    assert isinstance(plugpkg.R, Registry) and list(plugpkg.R) == ["bad", "good"]  # indexed, none imported
    assert plugpkg.R["good"] == 1
    with pytest.raises(UserError, match=r"plugin 'bad': .*bad.py:2 cannot be imported \(SyntaxError"):
        plugpkg.R["bad"]


def test_a_filtered_or_reseeded_run_gets_its_own_table_name():
    from artifact.grid import table_stem

    assert table_stem("table2", [], None, 3) == "table2"
    assert table_stem("table2", [], 3, 3) == "table2"  # the preset's own seed count is the full table
    assert table_stem("table2", ["method=jtt", "attack=dlbd"], None, 3) == "table2.only.attack=dlbd+method=jtt"
    assert table_stem("table2", [], 1, 3) == "table2.seeds-1"
    assert table_stem("table2", ["case=a b/c"], 5, 3) == "table2.only.case=a_b_c.seeds-5"  # safe as a file name
    assert table_stem("table2", ["method=JTT_2"], None, 3) == "table2.only.method=JTT_2"  # letters and digits kept


def test_the_job_index_round_trips_and_a_damaged_one_reads_as_absent(tmp_path):
    from artifact.grid import job_index_path, load_job_index, save_job_index

    path = job_index_path(tmp_path, "tiny", "table2.seeds-1")
    assert path == tmp_path / "tables" / "tiny" / "table2.seeds-1.jobs.json"
    jobs = expand(load_table("table11"), load_preset("tiny"))
    assert load_job_index(path) is None  # no index: an older results folder
    path.parent.mkdir(parents=True)
    save_job_index(path, jobs)
    back = load_job_index(path)
    assert [(j.id, j.labels, j.cfg) for j in back] == [(j.id, j.labels, j.cfg) for j in jobs]
    entries = json.loads(path.read_text())["jobs"]
    assert [e["id"] for e in entries] == [j.id for j in jobs]
    fewer = entries[:-1]  # a consistent index of fewer jobs reads as those jobs
    path.write_text(json.dumps({"jobs": fewer}))
    assert [j.id for j in load_job_index(path)] == [e["id"] for e in fewer]
    renamed = [{**entries[0], "id": "0" * 16}, *entries[1:]]  # a config that no longer hashes to its id
    unlabelled = [{k: v for k, v in entries[0].items() if k != "labels"}, *entries[1:]]
    for broken in (renamed, unlabelled):
        path.write_text(json.dumps({"jobs": broken}))
        assert load_job_index(path) is None
    for text in ("{", "[]", '{"jobs": 3}', '{"jobs": [{"id": "x"}]}'):
        path.write_text(text)
        assert load_job_index(path) is None, text


def test_the_presets_attack_and_model_entries_reach_each_job_per_dataset(tmp_path):
    """A preset's attack settings (and their by_dataset entry) and a per-dataset model entry land in the
    job config; a preset with no model entry at all gives ModelCfg's defaults."""
    smoke = load_preset("smoke")
    table = _table(tmp_path, "  - {method: jtt, dataset: [waterbirds, celeba], attack: [dlbd, none]}\n")
    tuned = smoke.__class__(**{**smoke.__dict__,
                               "attacks": {"dlbd": {"rate": 0.05, "by_dataset": {"celeba": {"rate": 0.02}}}},
                               "model": {"default": {"arch": "smallcnn", "width": 8},
                                         "celeba": {"arch": "smallcnn", "width": 4}}})
    jobs = {(j.labels["dataset"], j.labels["attack"]): j.cfg for j in expand(table, tuned, seeds=1)}
    assert jobs[("waterbirds", "dlbd")]["attack"]["params"]["rate"] == 0.05
    assert jobs[("celeba", "dlbd")]["attack"]["params"]["rate"] == 0.02
    assert jobs[("celeba", "none")]["attack"] == {"name": "none", "params": {}}
    assert {d: jobs[(d, "none")]["model"]["width"] for d in ("waterbirds", "celeba")} == {"waterbirds": 8, "celeba": 4}
    bare = smoke.__class__(**{**smoke.__dict__, "model": {}})
    assert expand(table, bare, seeds=1)[0].cfg["model"] == {"arch": "smallcnn", "pretrained": False, "width": 16}


def test_count_follows_a_seed_override_and_names_the_grid_block_of_an_error(tmp_path):
    import pytest

    from artifact.errors import UserError
    from artifact.grid import count

    table, tiny = load_table("table2"), load_preset("tiny")
    assert count(table, tiny, seeds=1) == len(expand(table, tiny, seeds=1)) == len(expand(table, tiny)) // tiny.seeds
    bad = _table(tmp_path, BLOCK + "  - {method: jtt, dataset: svhn, attack: dlbd}\n")
    with pytest.raises(UserError, match=r"^configs/table99.yaml: grid\[1\]: dataset 'svhn' has no entry"):
        count(bad, tiny)


def test_filters_that_each_match_but_not_together_say_so():
    import pytest

    from artifact.errors import UserError

    jobs = expand(load_table("table2"), load_preset("smoke"))
    with pytest.raises(UserError) as err:
        filter_jobs(jobs, ["method=george", "dataset=celeba"])  # GEORGE runs on Waterbirds only
    assert str(err.value) == ("--only method=george --only dataset=celeba: each matches some jobs, "
                              "but no job matches all of them")


# sha256 (first 16 hex digits) of the space-joined ids of table2's then table9's jobs, in grid order, per preset.
PINNED_IDS = {
    "paper": ("12f0b34797655412", 60),
    "quick": ("4dab5b3402004e52", 20),
    "tiny": ("842a69bca6724682", 60),
    "smoke": ("cf749f93c0145461", 20),
    "preflight": ("2a5c4834e6bb7481", 20),
}


def test_job_ids_are_pinned():
    """A job's id is where its finished result lives: a change to how configs resolve or hash (a renamed
    section, a dropped default, the clean baseline, the pretraining entry) would orphan every stored result
    and retrain it. An intended change updates these digests and says so in its commit."""
    import hashlib

    from artifact.config import PRESETS

    assert set(PINNED_IDS) == set(PRESETS)
    for name, (digest, n) in PINNED_IDS.items():
        ids = [j.id for t in ("table2", "table9") for j in expand(load_table(t), load_preset(name))]
        assert (hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16], len(ids)) == (digest, n), name


def test_a_bad_value_in_any_section_names_its_grid_block_and_key(tmp_path):
    import pytest

    from artifact.errors import UserError

    smoke, quick = load_preset("smoke"), load_preset("quick")
    for override, message in (("dataset.size: big", "dataset.size: expected int, got 'big'"),
                              ("model.width: wide", "model.width: expected int, got 'wide'"),
                              ("attack.rate: lots", "attack.rate: expected float, got 'lots'")):
        table = _table(tmp_path, f"  - {{method: jtt, dataset: waterbirds, attack: dlbd, {override}}}\n")
        with pytest.raises(UserError) as err:
            expand(table, smoke)
        assert str(err.value) == f"configs/table99.yaml: grid[0]: {message}"
    bad = quick.__class__(**{**quick.__dict__, "clean_baseline": {**quick.clean_baseline, "epochs": "many"}})
    with pytest.raises(UserError) as err:
        expand(_table(tmp_path, BLOCK), bad)
    assert str(err.value) == "configs/table99.yaml: grid[0]: clean_baseline.epochs: expected int, got 'many'"


def test_a_by_dataset_entry_merges_mappings_and_replaces_anything_else():
    from artifact.grid import _merge

    base = {"final": {"lr": 1, "wd": 2}, "scratch": None, "upweight": 5}
    assert _merge(base, {"final": {"lr": 3}, "scratch": {"lr": 4}, "upweight": {"x": 1}}) == {
        "final": {"lr": 3, "wd": 2}, "scratch": {"lr": 4}, "upweight": {"x": 1}}
    assert _merge(base, {"final": 7}) == {**base, "final": 7}
    assert base == {"final": {"lr": 1, "wd": 2}, "scratch": None, "upweight": 5}  # the preset is left alone


def test_a_bad_table_file_gets_the_whole_message(tmp_path):
    import pytest

    from artifact.errors import UserError
    from artifact.grid import table_names

    with pytest.raises(UserError) as err:
        load_table("tabel2")
    assert str(err.value) == f"unknown target 'tabel2' (valid: {', '.join(table_names())}, all)"
    assert ", table2, " in str(err.value)
    path = _table_yaml(tmp_path, "  - {method: jtt, dataset: waterbirds, attack: dlbd, colour: red}\n")
    with pytest.raises(UserError) as err:
        load_table("table99", tmp_path)
    assert str(err.value) == (f"{path}: grid[0].colour: unknown axis (valid: method, dataset, attack, case "
                              "or a dotted key under method., attack., model., dataset.)")
    for curve, message in (
        ("{path: elmf_curve, label: iteration}", "curve needs exactly the keys path, label, as"),
        ("{path: elmf_curve, label: iteration, as: elmf}", "curve label 'iteration' must be one of rows"),
    ):
        path = _table_yaml(tmp_path, extra=f"curve: {curve}\n")
        with pytest.raises(UserError) as err:
            load_table("table99", tmp_path)
        assert str(err.value) == f"{path}: {message}"
    _table_yaml(tmp_path, rows="[method, case, seed]")  # case and seed are rows of every block
    assert load_table("table99", tmp_path).rows == ("method", "case", "seed")


def test_a_table_row_or_metric_that_cannot_be_tabulated_gets_the_whole_message(tmp_path):
    import pytest

    from artifact.errors import UserError
    from artifact.grid import table_names

    assert table_names()[-1] == "ablation-epic"  # experiments beyond the paper are listed, after it
    path = _table_yaml(tmp_path, rows="[method, colour]")
    with pytest.raises(UserError) as err:
        load_table("table99", tmp_path)
    assert str(err.value) == (f"{path}: rows: 'colour' is not an axis of grid[0] "
                              "(its axes: method, dataset, attack)")
    path = _table_yaml(tmp_path, metrics="[wga, idnf.lrg3.x]")
    with pytest.raises(UserError) as err:
        load_table("table99", tmp_path)
    assert str(err.value) == (f"{path}: metrics: 'idnf.lrg3.x': idnf is per role "
                              "(valid: idnf.poisons, idnf.lrg1, idnf.lrg2, idnf.hrg)")
