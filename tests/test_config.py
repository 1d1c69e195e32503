"""Bad configs, targets and flags give one-line errors that name the file, the key and the fix."""

import textwrap

import pytest

from artifact.config import DatasetCfg, TrainCfg, build, load_preset, read_yaml
from artifact.errors import UserError
from artifact.grid import expand, load_table


def test_unknown_key_names_file_and_key():
    with pytest.raises(UserError, match=r"presets/x.yaml: methods.jtt.id.epoch: unknown key \(valid: epochs"):
        build(TrainCfg, {"epoch": 3}, "presets/x.yaml: methods.jtt.id")


def test_bad_type_is_reported():
    with pytest.raises(UserError, match=r"dataset.size: expected int, got 'big'"):
        build(DatasetCfg, {"size": "big"}, "dataset")


def test_yaml_scientific_notation_string_is_a_float():
    assert build(TrainCfg, {"lr": "1e-5"}, "x").lr == 1e-5


def test_invalid_value_is_reported():
    with pytest.raises(UserError, match="lr must be > 0"):
        build(TrainCfg, {"lr": 0}, "x")


def test_broken_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(UserError, match=r"t.yaml: not valid YAML \(line \d+\)"):
        read_yaml(p)


def test_unknown_preset_lists_valid():
    with pytest.raises(UserError, match=r"unknown preset 'huge' \(valid: paper, quick, tiny, smoke, preflight\)"):
        load_preset("huge")


def test_unknown_target_lists_valid():
    with pytest.raises(UserError, match=r"unknown target 'tabel2' \(valid: .*table2.*all\)"):
        load_table("tabel2")


def test_bad_grid_axis(tmp_path):
    (tmp_path / "table99.yaml").write_text(textwrap.dedent("""
        title: t
        description: d
        rows: [method]
        metrics: [wga]
        grid:
          - {method: jtt, dataset: waterbirds, attack: dlbd, methd.upweight: 3}
    """))
    with pytest.raises(UserError, match=r"table99.yaml: grid\[0\].methd.upweight: unknown axis"):
        load_table("table99", tmp_path)


def test_bad_override_value_names_table_and_key(smoke_preset):
    table = load_table("table2")
    bad = table.__class__(**{**table.__dict__, "grid": ({**table.grid[0], "method.upweight": "many"},)})
    with pytest.raises(UserError, match=r"configs/table2.yaml: grid\[0\]: method.upweight: expected int"):
        expand(bad, smoke_preset)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tabel2"], "error: unknown target 'tabel2' (valid: "),
        (["table2", "--frobnicate"], "error: unrecognized arguments: --frobnicate"),
        (["table2", "--preset", "huge"], "error: argument --preset: invalid choice"),
        ([], "error: no target given"),
        (["check"], "error: check needs a target"),
        (["table2", "--only", "case"], "error: --only 'case': expected key=value"),
        (["table2", "--only", "colour=red"], "error: --only colour=...: unknown key"),
        (["table2", "--only", "method=jjt"],
         "error: --only method=jjt: no job has method 'jjt' (valid: jtt, george)"),
    ],
)
def test_cli_errors_are_one_line(run_cli, argv, message):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_presets_write_the_combined_methods_sections_once_as_yaml_aliases():
    """epic_jtt and strip reuse the jtt / epic sections by alias, so a recipe is changed in one place."""
    from pathlib import Path

    presets = Path(__file__).resolve().parents[1] / "configs" / "presets"
    for name in ("paper", "quick", "preflight", "smoke"):
        text = (presets / f"{name}.yaml").read_text()
        assert text.count("jtt: *jtt") == 2 and text.count("epic: *epic") == 1, name


def _preset_with(tmp_path, edit):
    """configs/presets/smoke.yaml with `edit` applied, as its own configs folder."""
    import yaml

    from artifact.config import config_dir

    data = read_yaml(config_dir() / "presets" / "smoke.yaml")
    edit(data)
    (tmp_path / "presets").mkdir(exist_ok=True)
    (tmp_path / "presets" / "smoke.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "presets" / "smoke.yaml"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["methods"]["erm"]["final"].update(epochs="many"), "methods.erm.final.epochs: expected int, got 'many'"),
    (lambda d: d["methods"]["erm"].update(by_dataset={"celeba": {"final": {"epochs": "lots"}}}),
     "methods.erm.by_dataset.celeba.final.epochs: expected int, got 'lots'"),
    (lambda d: d["methods"].update(jtx={}), "methods: unknown method 'jtx'"),
    (lambda d: d["attacks"]["dlbd"].update(rate="half"), "attacks.dlbd.rate: expected float, got 'half'"),
    (lambda d: d["datasets"]["celeba"].update(size="big"), "datasets.celeba.size: expected int, got 'big'"),
    (lambda d: d["model"]["default"].update(width="wide"), "model.default.width: expected int, got 'wide'"),
    (lambda d: d.update(clean_baseline={"epochs": "ten"}), "clean_baseline.epochs: expected int, got 'ten'"),
])
def test_a_bad_preset_section_names_the_preset_file_and_the_key(tmp_path, edit, message):
    """Every section of a preset is built when it is loaded, so the error names the preset file, not a
    table that happens to use the section."""
    path = _preset_with(tmp_path, edit)
    with pytest.raises(UserError) as err:
        load_preset("smoke", tmp_path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_a_preset_built_in_code_is_named_preset_in_its_errors():
    from artifact.grid import validate_preset

    smoke = load_preset("smoke")
    bad = smoke.__class__(**{**smoke.__dict__, "source": "", "attacks": {"dlbd": {"rate": "half"}}})
    with pytest.raises(UserError) as err:
        validate_preset(bad)
    assert str(err.value) == "preset: attacks.dlbd.rate: expected float, got 'half'"
    validate_preset(smoke.__class__(**{**smoke.__dict__, "methods": None, "attacks": None}))  # no sections: valid

