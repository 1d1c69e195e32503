"""The validation of expected_results/ (check.load_expected against a table's grid): every malformed
numbers file or claims file is refused with its whole one-line message, and what is well formed loads.
A file the checker misreads would judge the wrong cells, or none, and still print a verdict."""

from pathlib import Path

import pytest

from artifact import check
from artifact.config import PRESETS
from artifact.errors import UserError
from artifact.grid import TableCfg

# Two blocks: erm at two cases and two sizes; jtt at es 8, its case left to the default (standard).
TABLE = TableCfg(name="t", title="t", description="", rows=("method", "case", "es"), metrics=("wga", "asr"),
                 grid=({"method": "erm", "case": ["worst", "ideal"], "es": [2, 4]}, {"method": ["jtt"], "es": 8}))
# A curve's label column (figure1's iteration) takes its values from the results: any value is a cell's.
CURVE = TableCfg(name="t", title="t", description="", rows=("case", "iteration"), metrics=("elmf.poisons",),
                 grid=({"case": ["standard", "ideal"]},),
                 curve={"path": "elmf_curve", "label": "iteration", "as": "elmf"})
BOOL = TableCfg(name="t", title="t", description="", rows=("pretrained",), metrics=("wga",),
                grid=({"pretrained": [True, False]},))

FIX = "fix the file (a header: the table's row columns, metric, mean, std; one line per cell)"
HEADER = "method,case,es,metric,mean,std\n"
CLAIM = "{id: c, text: t, left: {case: worst, metric: wga}, op: '>=', value: 1"  # closed by the test's fields


def _load(tmp_path: Path, csv: str | None = None, claims: str | None = None, table=TABLE):
    if csv is not None:
        (tmp_path / "t.csv").write_text(csv)
    if claims is not None:
        (tmp_path / "t.claims.yaml").write_text(claims)
    return check.load_expected("t", tmp_path, table)


def _error(tmp_path: Path, **files) -> str:
    with pytest.raises(UserError) as e:
        _load(tmp_path, **files)
    return str(e.value)


# --- the paper's numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("", f"empty; {FIX}"),
    (" \n,,\n", f"empty; {FIX}"),
    ("method,case,es,mean,std\n", f"line 1: no column 'metric' (header: method,case,es,mean,std); {FIX}"),
    ("method,case,metric,mean,std\n", f"line 1: label columns method,case are not the table's rows "
                                      f"method,case,es; {FIX}"),
    (HEADER + "erm,worst,2,wga,50\n", f"line 2: 5 fields, the header has 6; {FIX}"),
    (HEADER + "erm,worst,2,wga,fifty,1\n", "line 2: mean 'fifty' is not a number (empty: N/A in the paper)"),
    (HEADER + "erm,worst,2,wga,50,x\n", "line 2: std 'x' is not a number (empty: N/A in the paper)"),
    # A blank line is skipped, not the end; 2.0 is the cell 2 is.
    (HEADER + "erm,worst,2,wga,50,1\n\nerm,worst,2.0,wga,51,1\n", "line 4: a second line for the same cell; keep one"),
    (HEADER + "erm,worst,2,acc,50,1\n", "line 2: metric 'acc' is not one of the table's (wga, asr)"),
    (HEADER + "erm,standard,2,wga,50,1\n", "line 2: no cell method=erm case=standard es=2 in the table's grid; "
                                           "fix the labels"),
    (HEADER + "jtt,standard,8,wga,50,1\njtt,worst,8,wga,50,1\n",
     "line 3: no cell method=jtt case=worst es=8 in the table's grid; fix the labels"),
])
def test_a_malformed_numbers_file_is_refused_with_its_line(tmp_path, text, message):
    assert _error(tmp_path, csv=text) == f"{tmp_path / 't.csv'}: {message}"


def test_a_well_formed_numbers_file_loads_with_labels_as_the_grid_spells_them(tmp_path):
    numbers, claims = _load(tmp_path, csv="case,method,es,metric,mean,std\nWorst,erm,2.0,wga,50,1\n\n"
                                          "standard,jtt,8,asr,,\nideal,erm,4,asr,1.5,\n")
    assert claims == []
    assert numbers[["case", "es", "metric"]].values.tolist() == [["Worst", 2.0, "wga"], ["standard", 8.0, "asr"],
                                                                 ["ideal", 4.0, "asr"]]
    assert numbers["mean"].isna().tolist() == [False, True, False]


def test_without_a_table_the_numbers_file_is_checked_for_its_own_shape_only(tmp_path):
    (tmp_path / "t.csv").write_text(HEADER + "x,y,1,acc,5,\n")
    numbers, _ = check.load_expected("t", tmp_path)
    assert numbers["metric"].tolist() == ["acc"]
    (tmp_path / "t.csv").write_text(HEADER + "x,y,1,acc,5,\nx,y,2,acc,5,\nx,y,1,acc,6,\n")
    with pytest.raises(UserError) as e:
        check.load_expected("t", tmp_path)
    assert str(e.value) == f"{tmp_path / 't.csv'}: line 4: a second line for the same cell; keep one"


def test_labels_match_the_grid_by_value_booleans_and_numbers_included(tmp_path):
    numbers, _ = _load(tmp_path, csv="pretrained,metric,mean,std\ntrue,wga,1,1\nFalse,wga,2,1\n", table=BOOL)
    assert len(numbers) == 2
    assert _error(tmp_path, csv="pretrained,metric,mean,std\nyes,wga,1,1\n", table=BOOL).endswith(
        "line 2: no cell pretrained=yes in the table's grid; fix the labels")


def test_a_curve_label_takes_any_value(tmp_path):
    numbers, claims = _load(tmp_path, csv="case,iteration,metric,mean,std\nideal,7,elmf.poisons,1,\n",
                            claims="claims:\n  - {id: c, text: t, left: {case: ideal, iteration: 7, metric: "
                                   "elmf.poisons}, op: '>=', value: 1, where: {iteration: {'>=': 2}}}\n", table=CURVE)
    assert numbers["iteration"].tolist() == [7] and [c["id"] for c in claims] == ["c"]
    assert _error(tmp_path, csv="case,iteration,metric,mean,std\nworst,7,elmf.poisons,1,\n", table=CURVE).endswith(
        "line 2: no cell case=worst in the table's grid; fix the labels")
    (tmp_path / "t.csv").unlink()
    assert _error(tmp_path, claims="claims:\n  - {id: c, text: t, left: {case: worst, metric: elmf.poisons}, "
                                   "op: '>=', value: 1}\n", table=CURVE).endswith(
        "claim c: left.case: 'worst' is in no row of the table's grid")


# --- the paper's claims -----------------------------------------------------------------------------------


def _claims(*entries: str) -> str:
    return "claims:\n" + "".join(f"  - {e}\n" for e in entries)


def _claim(fields: str = "") -> str:
    return CLAIM + (f", {fields}" if fields else "") + "}"


ROWS = "(valid: method, case, es)"
OPS = "(>=, <=, >, <, abs<=)"


@pytest.mark.parametrize("text, message", [
    ("claims:\n  - {id: c\n  - {id: d}\n", "not valid YAML (line 3); fix the syntax"),
    ("claims: \x07\n", "not valid YAML; fix the syntax"),  # a reader error has no line mark
    ("- {id: c}\n", "expected a mapping with a list under 'claims'"),
    ("claims: {id: c}\n", "expected a mapping with a list under 'claims'"),
    ("claim:\n  - " + _claim() + "\n", "unknown key 'claim' (the file has one key, claims)"),
    ("claims: []\nnote: x\n", "unknown key 'note' (the file has one key, claims)"),
    ("claims: []\n1: x\nnote: y\n", "unknown key 1 (the file has one key, claims)"),
    (_claims(_claim(), "5"), "claim #2: expected a mapping"),
    (_claims(_claim(), "{text: t}"), f"claim #2: needs id, text, left, op {OPS}, value"),
    (_claims(_claim().replace("'>='", "'=='")), f"claim c: needs id, text, left, op {OPS}, value"),
    (_claims(_claim().replace("value: 1", "value: five")), "claim c: value 'five' is not a number"),
    (_claims(_claim().replace("value: 1", "value: true")), "claim c: value True is not a number"),
    (_claims(_claim("groupby: [method]")), "claim c: unknown key 'groupby' (valid: id, text, source, left, right, "
                                           "op, value, presets, where, group_by)"),
    (_claims(_claim("presets: [paper, tiney]")), f"claim c: unknown preset 'tiney' in presets (valid: "
                                                 f"{', '.join(PRESETS)})"),
    (_claims(_claim().replace("{case: worst, metric: wga}", "{case: worst}")),
     "claim c: left must be a mapping with a metric, e.g. {case: ideal, metric: asr}"),
    (_claims(_claim().replace("{case: worst, metric: wga}", "wga")),
     "claim c: left must be a mapping with a metric, e.g. {case: ideal, metric: asr}"),
    (_claims(_claim("right: {case: ideal}")), "claim c: right must be a mapping with a metric, e.g. "
                                              "{case: ideal, metric: asr}"),
    (_claims(_claim("where: [case]")), "claim c: where must be a mapping of row column -> value"),
    (_claims(_claim("group_by: method")), "claim c: group_by must be a list of row columns"),
    (_claims(_claim("group_by: [dataset]")), f"claim c: group_by 'dataset' is not a row column {ROWS}"),
    (_claims(_claim("where: {dataset: x}")), f"claim c: where.dataset: not a row column {ROWS}"),
    (_claims(_claim("where: {metric: wga}")), f"claim c: where.metric: not a row column {ROWS}"),
    (_claims(_claim().replace("metric: wga", "metric: acc")), "claim c: left.metric 'acc' is not one of the "
                                                              "table's (wga, asr)"),
    (_claims(_claim("right: {case: ideal, metric: acc}")), "claim c: right.metric 'acc' is not one of the table's "
                                                           "(wga, asr)"),
    (_claims(_claim("right: {case: standrd, metric: wga}")), "claim c: right.case: 'standrd' is in no row of the "
                                                             "table's grid"),
    (_claims(_claim("where: {es: 3}")), "claim c: where.es: 3 is in no row of the table's grid"),
    (_claims(_claim("where: {es: {'>=': 2, '<=': 8}}")), f"claim c: where.es: a bound is one {{OP: number}} {OPS}"),
    (_claims(_claim("where: {es: {'==': 2}}")), f"claim c: where.es: a bound is one {{OP: number}} {OPS}"),
])
def test_a_malformed_claims_file_is_refused_naming_the_claim(tmp_path, text, message):
    assert _error(tmp_path, claims=text) == f"{tmp_path / 't.claims.yaml'}: {message}"


def test_well_formed_claims_load_in_order(tmp_path):
    text = _claims(_claim(), _claim("right: {case: ideal, metric: asr}, where: {es: {'>=': 2}}, group_by: [method]")
                   .replace("id: c", "id: d"), _claim("where: {es: last, case: IDEAL}, source: 'p. 3', presets: [paper]")
                   .replace("id: c", "id: e"))
    assert [c["id"] for c in _load(tmp_path, claims=text)[1]] == ["c", "d", "e"]
    assert _load(tmp_path, claims="")[1] == [] and _load(tmp_path, claims="claims: []\n")[1] == []
    # Without a table only the file's own shape is checked.
    (tmp_path / "t.claims.yaml").write_text(_claims(_claim("group_by: [dataset]")))
    assert [c["group_by"] for c in check.load_expected("t", tmp_path)[1]] == [["dataset"]]
