"""The reviewer's report: one page with every target's table beside the paper's, verdicts, plots, provenance.

`reproduce.sh report` writes results/report/<preset>/index.html (and its Markdown twin index.md) from
the results folder alone, in seconds: no training. Every number and verdict comes from the existing
layers (report.evaluate: the aggregate and the checker's verdicts `check` prints; check.load_expected:
the paper's numbers and sentences; figures.draw: the figures), so the page cannot disagree with them.
The page is self-contained: plots are base64 PNGs, styles inline, no script, nothing fetched.
"""

from __future__ import annotations

import base64
import collections
import datetime
import html
import io
import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from artifact import check, figures, report  # noqa: E402
from artifact.config import PRESETS, load_preset  # noqa: E402
from artifact.errors import UserError  # noqa: E402
from artifact.grid import (  # noqa: E402
    expand,
    filter_jobs,
    job_index_path,
    load_job_index,
    load_table,
    table_names,
    table_stem,
)
from artifact.grid import random_init as random_init_jobs  # noqa: E402
from artifact.store import Store, atomic_write_bytes, atomic_write_text  # noqa: E402

STATUSES = ("FAIL", "MISSING", "PASS", "SKIPPED")  # worst first: a cell shows the worst verdict it got
CELL_SECTIONS = ("Completeness and sanity", "Cells vs the paper")
CLAIMS = "The paper's claims"
MARK = {"PASS": "✓", "FAIL": "✗", "MISSING": "?", "SKIPPED": "–", "": ""}


@dataclass
class Target:
    """A target that has results: the checker's evaluation plus what the page adds beside it."""

    ev: report.Evaluation
    results: dict  # job id -> result.json (finished jobs only)
    paper: dict  # agg index -> (mean, std) from expected_results/<target>.csv
    cell: dict  # agg index -> the worst cell verdict
    png: bytes | None

    @property
    def name(self) -> str:
        return self.ev.table.name

    def counts(self, section: str | None = None) -> dict:
        vs = [v for v in self.ev.verdicts if section is None or v.section == section]
        return {s: sum(v.status == s for v in vs) for s in STATUSES}

    @property
    def verdict(self) -> str:
        """The checker's own word (REPRODUCED, NOT REPRODUCED, SANE ...), from its summary line."""
        return self.ev.text.rsplit("-> ", 1)[-1]

    @property
    def wall_s(self) -> float:
        return sum(_wall(r) for r in self.results.values())


def _wall(result: dict) -> float:
    return float((result.get("timing") or {}).get("wall_s") or 0.0)


class _Cells:
    """Aggregate rows by their labels, matched as the checker matches them (check._select), in one lookup."""

    def __init__(self, agg):
        self.agg, self.cols = agg, [*check._row_columns(agg), "metric"]
        self.keys = {tuple(map(check._norm, row)): i for i, row in
                     zip(agg.index, agg[self.cols].itertuples(index=False), strict=True)}

    def index(self, labels: dict) -> list:
        if set(labels) != set(self.cols):  # a subset of the labels: the checker's own selection
            return list(check._select(self.agg, labels).index)
        i = self.keys.get(tuple(check._norm(labels[c]) for c in self.cols))
        return [] if i is None else [i]


def _target(table, jobs, store, preset, preset_name, n_seeds, filtered) -> Target | None:
    results = {j.id: r for j in jobs if (r := store.load_result(j.id)) is not None}
    if not results:
        return None
    ev = report.evaluate(table, jobs, store, preset, preset_name, n_seeds, filtered)
    expected, _ = check.load_expected(table.name)
    cells = _Cells(ev.agg)
    paper = {}
    for e in [] if expected is None else expected.to_dict("records"):
        labels = {k: v for k, v in e.items() if k not in ("mean", "std")}
        for i in cells.index(labels):
            paper[i] = (e["mean"], e["std"])
    cell = {}
    for v in ev.verdicts:
        if v.cell and v.section in CELL_SECTIONS:
            for i in cells.index(v.cell):
                if i not in cell or STATUSES.index(v.status) < STATUSES.index(cell[i].status):
                    cell[i] = v
    target = Target(ev, results, paper, cell, None)
    target.png = _png(figures.draw(table, jobs, store) if table.kind == "figure" else _forest(target))
    return target


def _full_label(table, block) -> str:
    return " / ".join(report._label(c, block.iloc[0][c]) for c in table.rows)


def _rows(t: Target) -> tuple[list, list[str]]:
    """The rows with a finished job in the paper's layout ((labels shown, block) each), and the labels of the rest."""
    agg, table = t.ev.agg, t.ev.table
    finished = agg.groupby(list(table.rows), sort=False)["n"].transform("max") > 0
    return (list(report.layout(table, agg[finished])),
            [_full_label(table, block) for _, block in report.layout(table, agg[~finished])])


def _forest(t: Target):
    """Ours beside the paper's, mean ± std per row, one panel per metric: the table at a glance."""
    table = t.ev.table
    rows, _ = _rows(t)
    if not rows:
        return None
    names = [_full_label(table, block) for _, block in rows]
    n_m = len(table.metrics)
    height = 1.5 + 0.24 * len(rows)
    fig, axes = plt.subplots(1, n_m, figsize=(min(2.1 * n_m + 2.6, 17), height), sharey=True, squeeze=False)
    y = list(range(len(rows)))[::-1]
    for ax, metric in zip(axes[0], table.metrics, strict=True):
        series = {"paper": [], "ours": [], "ours, FAIL": []}  # (y, mean, std): one errorbar call each
        for yi, (_, block) in zip(y, rows, strict=True):
            r = block[block["metric"] == metric].iloc[0]
            if r.name in t.paper and not math.isnan(t.paper[r.name][0]):
                series["paper"].append((yi - 0.18, *t.paper[r.name]))
            if r["n"] > 0 and math.isfinite(r["mean"]):
                failed = r.name in t.cell and t.cell[r.name].status == "FAIL"
                series["ours, FAIL" if failed else "ours"].append((yi + 0.18, r["mean"], r["std"]))
        for label, points in series.items():
            if points:
                py, mean, std = zip(*points, strict=True)
                ax.errorbar(mean, py, xerr=[0 if math.isnan(v) else v for v in std], fmt="D" if label == "paper" else "o",
                            ms=4, capsize=2, lw=1, label=label, mfc="white" if label == "paper" else None,
                            color={"paper": "0.55", "ours": "tab:blue", "ours, FAIL": "tab:red"}[label])
        ax.set_title(textwrap.fill(table.headers.get(metric, metric.upper()), 22), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.set_xlim(min(0, ax.get_xlim()[0]), max(check.scale(metric), ax.get_xlim()[1]))  # the metric's range
    axes[0][0].set_yticks(y, names, fontsize=8)
    by_label = {}
    for ax in axes[0]:
        handles, labels = ax.get_legend_handles_labels()
        by_label.update(zip(labels, handles, strict=True))
    keys = [k for k in ("ours", "ours, FAIL", "paper") if k in by_label]
    fig.legend([by_label[k] for k in keys], [f"{k} (mean ± std)" for k in keys], loc="lower center", ncol=3,
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))  # room for the legend below
    return fig


def _png(fig) -> bytes | None:
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def collect_targets(store: Store, preset_name: str, seeds: int | None = None, only=(),
                    random_init: bool = False, preset=None) -> tuple[list, list]:
    """Every target with at least one finished job of this preset (after --only), and the names of the rest.

    The jobs are those the run made: `preset` as the CLI resolved it (--real-data, --allow-count-mismatch
    change the dataset configs, hence the job ids), `random_init` as --allow-random-init rewrites them.
    """
    preset = preset or load_preset(preset_name)
    n_seeds = seeds if seeds is not None else preset.seeds
    run, not_run = [], []
    for name in table_names():
        table = load_table(name)
        jobs = load_job_index(job_index_path(store.root, preset_name, table_stem(name, list(only), seeds, preset.seeds)))
        try:
            if jobs is None:  # no run recorded its jobs here (an older results folder): the grid as it is now
                jobs = filter_jobs(expand(table, preset, seeds), list(only))
                jobs = random_init_jobs(jobs) if random_init else jobs
        except UserError:  # a filter key this target does not have: the target is outside the filter
            jobs = []
        t = _target(table, jobs, store, preset, preset_name, n_seeds, bool(only)) if jobs else None
        (run.append(t) if t else not_run.append(name))
    return run, not_run


def _presets_with_results(store: Store, seeds) -> list[str]:
    found = []
    for p in PRESETS:
        try:
            preset = load_preset(p)
        except UserError:  # a configs folder (OILWATER_CONFIGS) without this preset
            continue
        if any(store.is_done(j.id) for n in table_names() for j in expand(load_table(n), preset, seeds)):
            found.append(p)
    return found


def can_show(preset_name: str) -> tuple[str, str]:
    """What the preset's checker judges, and what it cannot show: from its check config, not its name."""
    c = load_preset(preset_name).check
    can, cannot = [], []
    if c.numbers:
        can.append(f"each cell against the paper's mean ± std (PASS within {c.k:g}·√(sd_paper² + sd_ours²) "
                   f"+ {c.floor:g} pt)")
    else:
        cannot.append("the paper's numbers: its data and models differ from the paper's, so the paper's values are "
                      "shown beside ours for orientation only and the cells are not judged")
    if c.claims:
        can.append("the paper's qualitative claims (inequalities on cell means, each with the sentence it formalises)")
    else:
        cannot.append("the paper's claims: its verdict is SANE / NOT SANE, never REPRODUCED")
    if c.ranges:
        can.append(check.RANGES_RULE)
    can.append("completeness: every cell has all its seeds and finite values")
    return "; ".join(can), "; ".join(cannot) or "nothing the checker knows of: cells and claims are both judged"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"  # a job that reused cached stages takes a fraction of a second
    s = int(round(seconds))
    return f"{s // 3600} h {s // 60 % 60} min" if s >= 3600 else f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def _cell_text(t: Target, r) -> tuple[str, str, str]:
    """(ours, paper, Δ) of one aggregate row, formatted as the tables are."""
    d = t.ev.table.decimals
    ours = report.fmt_cell(r["mean"], r["std"], r["n"], r["n_expected"], r["na"], d)
    if r.name not in t.paper or math.isnan(t.paper[r.name][0]):
        return ours, "", ""
    pm, ps = t.paper[r.name]
    paper = report.fmt_cell(pm, ps, 1, 1, False, d)
    delta = f"{r['mean'] - pm:+.{d}f}" if r["n"] > 0 and math.isfinite(r["mean"]) else ""
    return ours, paper, delta


def _provenance(targets) -> dict[str, collections.Counter]:
    """Field -> value -> number of jobs, over the distinct jobs behind the page."""
    results = {i: r for t in targets for i, r in t.results.items()}
    fields = {
        "commit": lambda r: (r.get("env") or {}).get("git_commit"),
        "python / torch / CUDA / numpy": lambda r: " / ".join(
            str(r["env"].get(k)) for k in ("python", "torch", "cuda", "numpy")) if r.get("env") else None,
        "device": lambda r: f"{r['runtime'].get('device')} ({(r.get('env') or {}).get('device_name')})"
        if r.get("runtime") else None,
        "threads": lambda r: (r.get("runtime") or {}).get("threads"),
        "deterministic": lambda r: (r.get("runtime") or {}).get("deterministic"),
        "host": lambda r: (r.get("env") or {}).get("hostname"),
        "seed": lambda r: r.get("seed"),
    }
    return {f: collections.Counter("not recorded" if get(r) is None else str(get(r)) for r in results.values())
            for f, get in fields.items()}


@dataclass
class Page:
    preset: str
    description: str
    can: str
    cannot: str
    targets: list
    not_run: list
    out_dir: Path
    store: Store
    command: str

    def totals(self, section: str | None = None) -> dict:
        return {s: sum(t.counts(section)[s] for t in self.targets) for s in STATUSES}

    @property
    def compute_s(self) -> float:
        return sum(_wall(r) for r in {i: r for t in self.targets for i, r in t.results.items()}.values())

    def link(self, job_id: str) -> str:
        return os.path.relpath(self.store.result_path(job_id), self.out_dir)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:16px 24px;color:#222}
h1{font-size:22px;margin:4px 0}h2{font-size:18px;margin:28px 0 6px;border-top:2px solid #ccc;padding-top:12px}
h3{font-size:15px;margin:14px 0 4px}.muted{color:#666}.small{font-size:12px}
.box{border:1px solid #ccc;border-radius:6px;padding:10px 14px;margin:10px 0;background:#fafafa}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #d0d0d0;padding:3px 7px;vertical-align:top}
th{background:#f0f0f0;font-weight:600;text-align:left}td.num{text-align:right;white-space:nowrap}
td.v .ours{font-weight:600}td.v .paper{display:block;color:#555;font-size:11px}
.PASS{background:#dff3df}.FAIL{background:#f9d3d3}.MISSING{background:#fff0c2}.SKIPPED{background:#eceff1}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-weight:700;font-size:12px}
.badge.PASS{color:#1b5e20}.badge.FAIL{color:#8b0000}.badge.MISSING{color:#7a5b00}.badge.SKIPPED{color:#555}
.verdict{font-weight:700}.headline{font-size:16px;margin:8px 0}.headline .badge{font-size:15px;padding:2px 10px}
ul.claims{list-style:none;padding:0}ul.claims li{margin:4px 0;padding:4px 8px;border-radius:4px}
.chip{display:inline-block;margin:3px 4px 0 0;padding:0 6px;border:1px solid #bbb;border-radius:4px;font-size:12px;
font-family:monospace}ul.claims .src{color:#555;font-size:12px;font-style:italic}
ul.claims .det{font-family:monospace;font-size:12px}
img{max-width:100%;border:1px solid #eee}pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
nav a{margin-right:10px}
"""


def _headline(page: Page, as_html: bool = False) -> str:
    """The checker's verdicts over the targets run, worst first: e.g. '3 NOT REPRODUCED (table1, ...), 9 REPRODUCED'."""
    by = collections.defaultdict(list)
    for t in page.targets:
        by[(t.ev.ok, t.verdict)].append(t.name)
    parts = []
    for (ok, word), names in sorted(by.items()):
        text = f"{len(names)} {word}" + ("" if ok else f" ({', '.join(names)})")
        parts.append(_badge("PASS" if ok else "FAIL", text) if as_html else f"**{text}**")
    return "Verdict: " + (" " if as_html else ", ").join(parts)


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge {status}">{html.escape(text or status)}</span>'


def _counts_text(c: dict) -> str:
    return ", ".join(f"{c[s]} {s}" for s in STATUSES if c[s]) or "none"


def _html(page: Page) -> str:
    e = html.escape
    claims, cells = page.totals(CLAIMS), page.totals("Cells vs the paper")
    compared = sum(cells[s] for s in ("PASS", "FAIL", "MISSING"))
    total = page.totals()
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Reviewer's report ({e(page.preset)})"
           f"</title><style>{CSS}</style></head><body>",
           "<h1>Reviewer's report: <i>Like Oil and Water</i>, reproduced</h1>",
           f"<p class='muted small'>Written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC from "
           f"<code>{e(str(page.store.root))}</code> by <code>{e(page.command)}</code>; no training.</p>",
           f"<p class='headline'>{_headline(page, True)}</p>",
           f"<div class='box' id='preset' data-preset='{e(page.preset)}'><b>These numbers were made at preset "
           f"<code>{e(page.preset)}</code></b>: {e(page.description)}.<br><b>What it can show:</b> {e(page.can)}."
           f"<br><b>What it cannot show:</b> {e(page.cannot)}.</div>",
           f"<div class='box' id='summary' data-pass='{total['PASS']}' data-fail='{total['FAIL']}' "
           f"data-missing='{total['MISSING']}' data-skipped='{total['SKIPPED']}'>",
           f"<b>Targets run:</b> {len(page.targets)} ({', '.join(e(t.name) for t in page.targets)})"
           + (f"; not run: {e(', '.join(page.not_run))}" if page.not_run else "") + "<br>",
           "<b>Claims:</b> " + " ".join(_badge(s, f"{claims[s]} {s}") for s in STATUSES) + "<br>",
           "<b>Cells within tolerance:</b> " + (f"{cells['PASS']} of {compared} compared with the paper "
                                               f"({cells['FAIL']} outside, {cells['MISSING']} missing)"
                                               if compared else "not compared at this preset") + "<br>",
           f"<b>All verdicts (as <code>reproduce.sh check</code> counts them):</b> {_counts_text(total)}<br>",
           f"<b>Compute:</b> {_duration(page.compute_s)} over "
           f"{len({i for t in page.targets for i in t.results})} jobs (sum of the jobs' recorded wall times; "
           "a lower bound: shared stages computed before the jobs, e.g. identification models, record no time)</div>",
           "<table id='targets'><tr><th>target</th><th>checker's verdict</th><th>claims</th><th>cells vs paper</th>"
           "<th>all verdicts</th><th>jobs done</th><th>wall time</th></tr>"]
    for t in page.targets:
        c, cl, ce = t.counts(), t.counts(CLAIMS), t.counts("Cells vs the paper")
        status = "PASS" if t.ev.ok else ("FAIL" if c["FAIL"] else "MISSING")
        n_ce = sum(ce[s] for s in ("PASS", "FAIL", "MISSING"))
        within = f"{ce['PASS']}/{n_ce} within tolerance" if n_ce else "—"
        out.append(f"<tr class='target-row' data-target='{e(t.name)}' data-pass='{c['PASS']}' data-fail='{c['FAIL']}' "
                   f"data-missing='{c['MISSING']}' data-skipped='{c['SKIPPED']}'>"
                   f"<td><a href='#target-{e(t.name)}'>{e(t.name)}</a></td><td class='{status}'>{e(t.verdict)}</td>"
                   f"<td>{_counts_text(cl) if sum(cl.values()) else '—'}</td>"
                   f"<td>{within}</td>"
                   f"<td>{_counts_text(c)}</td><td class='num'>{len(t.results)}/{len(t.ev.jobs)}</td>"
                   f"<td class='num'>{_duration(t.wall_s)}</td></tr>")
    out.append("</table><p class='small'>Colours: " + " ".join(_badge(s, f"{MARK[s]} {s}") for s in STATUSES)
               + "; uncoloured: shown, not judged at this preset. Hover a cell for the checker's detail.</p>")
    out.append("<nav>" + "".join(f"<a href='#target-{e(t.name)}'>{e(t.name)}</a>" for t in page.targets)
               + "<a href='#provenance'>provenance</a></nav>")
    for t in page.targets:
        out.append(_html_target(t, page))
    out.append(_html_provenance(page))
    out.append("</body></html>")
    return "\n".join(out)


def _html_target(t: Target, page: Page) -> str:
    e, table, c = html.escape, t.ev.table, t.counts()
    out = [f"<section class='target' id='target-{e(t.name)}' data-target='{e(t.name)}' data-pass='{c['PASS']}' "
           f"data-fail='{c['FAIL']}' data-missing='{c['MISSING']}' data-skipped='{c['SKIPPED']}'>",
           f"<h2>{e(table.title)}</h2>",
           f"<p><span class='verdict'>{e(t.verdict)}</span> · {_counts_text(c)} · {len(t.results)}/{len(t.ev.jobs)} "
           f"jobs done · {_duration(t.wall_s)} · <code>./reproduce.sh {e(t.name)} --preset {e(page.preset)}</code>"
           f"<br><span class='muted small'>{e(table.description)}</span></p>"]
    claims = [v for v in t.ev.verdicts if v.section == CLAIMS]
    if claims:
        out.append("<h3>The paper's claims</h3><ul class='claims'>")
        by_claim = collections.defaultdict(list)  # one item per statement, one chip per block it is checked in
        for v in claims:
            by_claim[(v.claim["id"], v.claim["text"])].append(v)
        for (cid, text), vs in by_claim.items():
            worst = min((v.status for v in vs), key=STATUSES.index)
            n = collections.Counter(v.status for v in vs)
            chips = "".join(f"<span class='chip {v.status}' data-status='{v.status}' title='{e(v.what)}'>"
                            f"{MARK[v.status]} {e(v.what[len(cid):].strip(' []'))}: {e(v.detail)}</span>" for v in vs)
            sources = "; ".join(dict.fromkeys(v.claim["source"] for v in vs if v.claim.get("source")))
            out.append(f"<li class='claim {worst}' data-status='{worst}'>"
                       f"{_badge(worst, ', '.join(f'{n[s]} {s}' for s in STATUSES if n[s]))} <b>{e(cid)}</b>: "
                       f"“{e(text)}”<br><span class='src'>{e(sources)}</span><br>{chips}</li>")
        out.append("</ul>")
    other = [v for v in t.ev.verdicts if v.section not in (CLAIMS, "Cells vs the paper") and not v.cell]
    for section in dict.fromkeys(v.section for v in other):  # sanity, ranges: the checker's order
        out.append(f"<h3>{e(section)}</h3><ul class='claims'>" + "".join(
            f"<li class='{v.status}'>{_badge(v.status)} <b>{e(v.what)}</b> <span class='det'>{e(v.detail)}</span></li>"
            for v in other if v.section == section) + "</ul>")
    if table.kind == "figure" and t.png:  # the figure is the paper's own presentation: before its long table
        out.append(_img(t))
    out.append(_html_table(t))
    if table.kind != "figure" and t.png:
        out.append(_img(t))
    out.append(f"<details><summary>The checker's output and the {len(t.results)} result files</summary>"
               f"<pre>{e(t.ev.text)}</pre><p class='small'>"
               + " ".join(f"<a href='{e(page.link(i))}'>{e(i)}</a>" for i in t.results) + "</p></details>")
    out.append("</section>")
    return "\n".join(out)


def _img(t: Target) -> str:
    alt = "the figure" if t.ev.table.kind == "figure" else "ours beside the paper's, mean ± std per row"
    return (f"<img alt='{html.escape(t.name)}: {alt}' "
            f"src='data:image/png;base64,{base64.b64encode(t.png).decode()}'>")


def _html_table(t: Target) -> str:
    e, table = html.escape, t.ev.table
    head = "".join(f"<th>{e(table.headers.get(c, c.upper()))}</th>" for c in (*table.rows, *table.metrics))
    rows, (run, not_run) = [], _rows(t)
    for shown, block in run:
        cells = []
        for _, r in block.iterrows():
            v = t.cell.get(r.name)
            status = v.status if v else ""
            ours, paper, delta = _cell_text(t, r)
            extra = f"<span class='paper'>paper {e(paper)} · Δ {e(delta)}</span>" if paper else ""
            title = f" title='{e(v.detail)}'" if v else ""
            cells.append(f"<td class='v num {status}' data-status='{status}'{title}>{MARK[status]} "
                         f"<span class='ours'>{e(ours)}</span>{extra}</td>")
        rows.append("<tr>" + "".join(f"<td>{e(s)}</td>" for s in shown) + "".join(cells) + "</tr>")
    out = ""
    if rows:
        out = f"<table class='results'><tr>{head}</tr>{''.join(rows)}</table>"
        out = f"<details><summary>The table ({len(rows)} rows)</summary>{out}</details>" if table.kind == "figure" else out
    if not_run:
        out += (f"<p class='MISSING small' data-rows-not-run='{len(not_run)}'>{len(not_run)} rows with no finished "
                f"job (MISSING): {e('; '.join(not_run))}</p>")
    return out


def _html_provenance(page: Page) -> str:
    e = html.escape
    out = ["<section id='provenance'><h2>Provenance</h2><table>"]
    for field, counter in _provenance(page.targets).items():
        vals = ", ".join(f"{e(v)} ({n} jobs)" for v, n in sorted(counter.items()))
        out.append(f"<tr><th>{e(field)}</th><td>{vals}</td></tr>")
    out.append("</table><h3>Wall time per target</h3><table><tr><th>target</th><th>jobs</th><th>wall time</th>"
               "<th>result files</th></tr>")
    for t in page.targets:
        out.append(f"<tr><td>{e(t.name)}</td><td class='num'>{len(t.results)}</td><td class='num'>"
                   f"{_duration(t.wall_s)}</td><td class='small'>"
                   + " ".join(f"<a href='{e(page.link(i))}'>{e(i[:8])}</a>" for i in t.results) + "</td></tr>")
    out.append("</table><p class='small muted'>A job shared by several targets (e.g. Table 2's rows in Table 1) counts "
               "in each target's wall time and once in the total. Each result.json holds the job's full resolved "
               "config.</p></section>")
    return "\n".join(out)


def _markdown(page: Page) -> str:
    claims, cells, total = page.totals(CLAIMS), page.totals("Cells vs the paper"), page.totals()
    compared = sum(cells[s] for s in ("PASS", "FAIL", "MISSING"))
    out = ["# Reviewer's report: *Like Oil and Water*, reproduced", "", _headline(page), "",
           f"**These numbers were made at preset `{page.preset}`**: {page.description}.", "",
           f"- What it can show: {page.can}.", f"- What it cannot show: {page.cannot}.", "",
           f"Targets run: {len(page.targets)} ({', '.join(t.name for t in page.targets)})"
           + (f"; not run: {', '.join(page.not_run)}" if page.not_run else "") + ".  ",
           f"Claims: {_counts_text(claims)}.  ",
           "Cells within tolerance: " + (f"{cells['PASS']} of {compared}" if compared else "not compared at this preset")
           + ".  ", f"All verdicts: {_counts_text(total)}.  ",
           f"Compute: {_duration(page.compute_s)} (sum of the jobs' recorded wall times).", "",
           "| target | checker's verdict | all verdicts | jobs done | wall time |", "|---|---|---|---|---|"]
    out += [f"| [{t.name}](#{t.name}) | {t.verdict} | {_counts_text(t.counts())} | {len(t.results)}/{len(t.ev.jobs)} | "
            f"{_duration(t.wall_s)} |" for t in page.targets]
    for t in page.targets:
        table = t.ev.table
        out += ["", f"## {t.name}", "", f"**{table.title}** — {t.verdict}", ""]
        if t.png:
            out += [f"![{t.name}]({t.name}.png)", ""]
        lines, (run, not_run) = [], _rows(t)
        for shown, block in run:
            cells = []
            for _, r in block.iterrows():
                ours, paper, delta = _cell_text(t, r)
                status = t.cell[r.name].status if r.name in t.cell else ""
                cells.append(ours + (f" (paper {paper}, Δ {delta})" if paper else "")
                             + (f" **{status}**" if status else ""))
            lines.append("| " + " | ".join([*shown, *cells]) + " |")
        head = [table.headers.get(c, c.upper()) for c in (*table.rows, *table.metrics)]
        if lines:
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *lines, ""]
        if not_run:
            out += [f"{len(not_run)} rows with no finished job (MISSING): {'; '.join(not_run)}", ""]
        for v in (v for v in t.ev.verdicts if v.section == CLAIMS):
            out.append(f"- **{v.status}** {v.what}: {v.detail} — “{v.claim['text']}”")
    out += ["", "## Provenance", ""]
    for field, counter in _provenance(page.targets).items():
        out.append(f"- {field}: " + ", ".join(f"{v} ({n} jobs)" for v, n in sorted(counter.items())))
    out += ["", "| target | jobs | wall time |", "|---|---|---|"]
    out += [f"| {t.name} | {len(t.results)} | {_duration(t.wall_s)} |" for t in page.targets]
    return "\n".join(out) + "\n"


def write_report(results: str | Path, preset_name: str, seeds: int | None = None, only=(),
                 random_init: bool = False, preset=None) -> Path:
    """Write results/report/<preset>/index.html, index.md and one PNG per plot; return the HTML's path."""
    store = Store(results)
    if not (store.root / "jobs").is_dir():
        raise UserError(f"no results folder at {store.root} (no jobs/ in it): pass --results DIR of a run")
    if preset_name not in PRESETS:
        load_preset(preset_name)  # raises the one-line error naming the valid presets
    targets, not_run = collect_targets(store, preset_name, seeds, only, random_init, preset)
    if not targets:
        others = [p for p in _presets_with_results(store, seeds) if p != preset_name]
        hint = f"it has results of preset {', '.join(others)}: pass --preset {others[0]}" if others else \
            "run a target first, e.g. ./reproduce.sh table2 --preset tiny"
        raise UserError(f"no results of preset {preset_name!r} in {store.root}"
                        + (f" matching --only {' '.join(only)}" if only else "") + f"; {hint}")
    out_dir = store.root / "report" / preset_name
    can, cannot = can_show(preset_name)
    command = " ".join(["./reproduce.sh report --preset", preset_name, "--results", str(store.root),
                        *(f"--only {o}" for o in only), *([f"--seeds {seeds}"] if seeds is not None else [])])
    page = Page(preset_name, load_preset(preset_name).description.rstrip("."), can, cannot, targets, not_run,
                out_dir, store, command)
    for t in targets:
        if t.png:
            atomic_write_bytes(out_dir / f"{t.name}.png", t.png)
    atomic_write_text(out_dir / "index.md", _markdown(page))
    path = out_dir / "index.html"
    atomic_write_text(path, _html(page))
    return path
