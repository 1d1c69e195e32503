"""The reviewer's report (artifact/reviewer_report.py): its content from golden and smoke results, its
errors, and the page as Debian's chromium renders it (skipped where chromium cannot be found)."""

import base64
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from artifact.reviewer_report import write_report


class _Elements(HTMLParser):
    """(tag, attributes) of every element of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.elements = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def of(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.elements if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def _counts(attrs: dict) -> dict:
    return {s: int(attrs[f"data-{s.lower()}"]) for s in ("PASS", "FAIL", "MISSING", "SKIPPED")}


def _checker_counts(run_cli, target, preset, results, *only) -> dict:
    """The counts of `reproduce.sh check TARGET`'s summary line."""
    _, out, _ = run_cli("check", target, "--preset", preset, "--results", str(results), *only)
    line = next(x for x in out.splitlines() if x.startswith("Summary: "))
    found = dict((s, int(n)) for n, s in re.findall(r"(\d+) (PASS|FAIL|MISSING|SKIPPED)", line))
    return {s: found.get(s, 0) for s in ("PASS", "FAIL", "MISSING", "SKIPPED")}


def _ideal_backdoored(labels, metrics):
    if labels["case"] == "ideal":
        metrics["asr"] = 60.0  # the attack succeeds without amplification: contradicts the paper
    return metrics


def _assert_page(page: _Elements, targets: list[str], run_cli, preset: str, results: Path, *only):
    """One section per target, counts equal the checker's (per target and in total), images embedded."""
    sections = page.of("section", **{"class": "target"})
    assert [s["data-target"] for s in sections] == targets
    total = dict.fromkeys(("PASS", "FAIL", "MISSING", "SKIPPED"), 0)
    for s in sections:
        expected = _checker_counts(run_cli, s["data-target"], preset, results, *only)
        assert _counts(s) == expected, s["data-target"]
        (row,) = [r for r in page.of("tr", **{"class": "target-row"}) if r["data-target"] == s["data-target"]]
        assert _counts(row) == expected
        total = {k: total[k] + v for k, v in expected.items()}
    (summary,) = page.of("div", id="summary")
    assert _counts(summary) == total
    images = page.of("img")
    assert images and all(i["src"].startswith("data:image/png;base64,") for i in images)
    for i in images:
        assert base64.b64decode(i["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_golden_report_marks_the_failed_cell_and_claim(golden_env, run_cli):
    store, write = golden_env
    write(_ideal_backdoored)
    path = write_report(store.root, "paper")
    assert path == store.root / "report" / "paper" / "index.html"
    text = path.read_text()
    page = _Elements(text)
    _assert_page(page, ["table2"], run_cli, "paper", store.root)
    failed = page.of("td", data_status="FAIL")
    assert len(failed) == 1 and "ours 60.0 ± 0.0, paper 0.5 ± 0.3" in failed[0]["title"]
    assert len(page.of("li", **{"class": "claim FAIL"})) == 1  # the statement, and the block where it fails
    assert len(page.of("span", **{"class": "chip FAIL"})) == 1
    # The claim's sentence from expected_results/, the paper's value beside ours and the preset's scope.
    assert "Amplifying the poisons boosts the attack" in text
    assert "paper 0.5 ± 0.3 · Δ +59.5" in text
    (preset,) = page.of("div", id="preset")
    assert preset["data-preset"] == "paper" and "What it cannot show" in text
    # Links to each job's result.json, relative to the page, that resolve.
    links = [a["href"] for a in page.of("a") if a["href"].endswith("result.json")]
    assert len(set(links)) == 9 and all((path.parent / h).is_file() for h in links)
    md = (path.parent / "index.md").read_text()
    assert "**FAIL**" in md and "(table2.png)" in md and (path.parent / "table2.png").is_file()


def test_report_of_a_passing_run_has_no_failed_cell(golden_env):
    store, write = golden_env
    write()
    page = _Elements(write_report(store.root, "paper").read_text())
    statuses = {td["data-status"] for td in page.of("td") if "data-status" in td}
    assert statuses == {"PASS"}


def test_report_restricted_by_only_counts_as_check_does(golden_env, run_cli):
    store, write = golden_env
    write(_ideal_backdoored)
    code, _, _ = run_cli("report", "--preset", "paper", "--results", str(store.root), "--only", "case=worst")
    page = _Elements((store.root / "report" / "paper" / "index.html").read_text())
    assert code == 0
    _assert_page(page, ["table2"], run_cli, "paper", store.root, "--only", "case=worst")
    assert not page.of("td", data_status="FAIL")  # the wrong ideal ASR is outside the filter


def test_quick_report_lists_the_sanity_ranges(tmp_path, run_cli):
    """At quick the checker's verdict is the sanity ranges (report.evaluate aggregates them as `check` does)."""
    from artifact.config import load_preset
    from artifact.grid import expand, filter_jobs, load_table
    from artifact.store import Store

    store = Store(tmp_path / "results")
    only = ["method=jtt", "dataset=waterbirds", "attack=dlbd"]
    for job in filter_jobs(expand(load_table("table2"), load_preset("quick")), only):
        wga = 0.0 if job.labels["case"] == "worst" else 70.0  # a collapsed model: WGA 0 fails its range
        store.write_result(job.id, {"metrics": {"wga": wga, "asr": 90.0, "acc": 80.0, "asr_clean": 5.0,
                                                "pred_min_share": 30.0}})
    page = write_report(store.root, "quick", only=only)
    text, dom = page.read_text(), _Elements(page.read_text())
    assert "<h3>Sanity ranges</h3>" in text and "jtt waterbirds dlbd worst wga" in text
    (section,) = dom.of("section", data_target="table2")
    assert _counts(section) == _checker_counts(run_cli, "table2", "quick", store.root, *(f"--only={o}" for o in only))
    assert _counts(section)["FAIL"] == 1


def test_report_errors_are_one_line(tmp_path, run_cli, golden_env):
    code, _, err = run_cli("report", "--results", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error: no results folder at") and len(err.splitlines()) == 1
    store, write = golden_env
    (store.root / "jobs").mkdir(parents=True)
    code, _, err = run_cli("report", "--preset", "paper", "--results", str(store.root))
    assert code == 2 and "no results of preset 'paper'" in err and "run a target first" in err
    code, _, err = run_cli("report", "--preset", "nonesuch", "--results", str(store.root))
    assert code == 2 and err.startswith("error: ") and "nonesuch" in err


def test_report_names_the_preset_that_has_results(tmp_path, run_cli):
    from artifact.config import load_preset
    from artifact.grid import expand, load_table
    from artifact.store import Store

    store = Store(tmp_path / "results")
    job = expand(load_table("table2"), load_preset("smoke"))[0]
    store.write_result(job.id, {"metrics": {"wga": 50.0, "asr": 10.0, "acc": 70.0}})
    code, _, err = run_cli("report", "--preset", "paper", "--results", str(store.root))
    assert code == 2 and "pass --preset smoke" in err
    code, out, _ = run_cli("report", "--preset", "smoke", "--results", str(store.root))
    assert code == 0 and out.strip().endswith("report/smoke/index.html")


# --- In a real browser --------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Appended to a copy of the page: after the load event, each image's decoded width lands in the DOM.
PROBE = ("<script>addEventListener('load', () => document.querySelectorAll('img').forEach("
         "i => i.setAttribute('data-natural-width', i.naturalWidth)));</script>")


@pytest.fixture
def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not found: install Debian's chromium (apt-get install -y chromium, as .ci/run does) "
                    "to render the reviewer's report in a browser")

    def run(page: Path, *flags) -> str:
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                                   *flags, page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    return run


def _render(chromium, path: Path, shot: Path) -> _Elements:
    """The page's DOM after chromium loaded it (with every image decoded), and a screenshot of it."""
    probe = path.with_name("probe.html")
    probe.write_text(path.read_text().replace("</body>", PROBE + "</body>"))
    dom = _Elements(chromium(probe, "--dump-dom"))
    probe.unlink()
    assert all(int(i.get("data-natural-width", 0)) > 0 for i in dom.of("img")), "an image did not load"
    chromium(path, f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return dom


@pytest.mark.slow  # a headless chromium: seconds, and end to end
def test_browser_renders_the_failed_cell(golden_env, chromium, run_cli, tmp_path):
    store, write = golden_env
    write(_ideal_backdoored)
    dom = _render(chromium, write_report(store.root, "paper"), tmp_path / "golden.png")
    _assert_page(dom, ["table2"], run_cli, "paper", store.root)
    (failed,) = dom.of("td", data_status="FAIL")
    assert "FAIL" in failed["class"].split()


@pytest.mark.slow
def test_browser_renders_a_smoke_report(chromium, run_cli, tmp_path):
    results = tmp_path / "results"
    common = ("--preset", "smoke", "--results", str(results), "--jobs", "1", "--device", "cpu")
    run_cli("table2", *common, "--only", "method=jtt", "--only", "dataset=waterbirds", "--only", "attack=dlbd")
    run_cli("figure1", *common, "--only", "attack=dlbd", "--only", "dataset=waterbirds")
    code, out, _ = run_cli("report", "--preset", "smoke", "--results", str(results))
    assert code == 0
    path = Path(out.split(": ", 1)[1].strip())
    dom = _render(chromium, path, tmp_path / "smoke.png")
    targets = [s["data-target"] for s in dom.of("section", **{"class": "target"})]
    assert {"table2", "figure1"} <= set(targets)
    _assert_page(dom, targets, run_cli, "smoke", results)
    links = {a["href"] for a in dom.of("a") if a["href"].endswith("result.json")}
    results_ = [json.loads((path.parent / h).read_text()) for h in links]
    assert results_ and all(r["metrics"] for r in results_)
    text = path.read_text()  # provenance: the commit and thread count each job recorded
    assert all((r["env"]["git_commit"] or "not recorded") in text for r in results_)
    assert f"<th>threads</th><td>{results_[0]['runtime']['threads']} (" in text


def test_all_ends_by_writing_the_report(golden_env, run_cli):
    store, write = golden_env
    write()  # every job done: `all` trains nothing, then tabulates, checks and writes the report
    code, out, _ = run_cli("all", "--preset", "paper", "--results", str(store.root), "--device", "cpu")
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last == f"reviewer's report: {store.root / 'report' / 'paper' / 'index.html'}"
    assert "data-target='table2'" in (store.root / "report" / "paper" / "index.html").read_text()
