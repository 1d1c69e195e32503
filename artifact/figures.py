"""Figures from the result files (kind: figure configs), drawn with matplotlib's Agg backend.

Figure 1: ELMF per ground-truth role over EPIC's iterations, one panel per (dataset, attack) of the grid,
mean ± std over seeds as a line and a band. Rebuilt from results every time, like the tables.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from artifact.store import atomic_write_bytes  # noqa: E402

ROLES = {"poisons": ("Poisons", "tab:red"), "lrg1": ("LRG-1", "tab:blue"), "lrg2": ("LRG-2", "tab:cyan"),
         "hrg": ("HRG", "tab:gray")}
NAMES = {"waterbirds": "Waterbirds", "celeba": "CelebA"}


def curves(jobs, store) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """(dataset, attack) -> role -> [seeds, iterations] ELMF (%), from each finished job's `elmf_curve`."""
    panels: dict[tuple[str, str], dict[str, list]] = {}
    for job in jobs:
        result = store.load_result(job.id)
        panel = panels.setdefault((job.labels["dataset"], job.labels["attack"]), {})
        curve = result["metrics"].get("elmf_curve") if result else None
        if not curve:
            continue
        for role in ROLES:
            if role in curve[0]:
                panel.setdefault(role, []).append([point[role] for point in curve])
    return {k: {r: np.asarray(v, dtype=float) for r, v in p.items()} for k, p in panels.items()}


def elmf_figure(data: dict, title: str):
    n = max(len(data), 1)
    fig, axes = plt.subplots(1, n, figsize=(max(3.6 * n, 6.0), 3.4), squeeze=False, sharey=True)
    for ax, ((dataset, attack), roles) in zip(axes[0], data.items(), strict=False):
        ax.set_title(f"{attack.upper()} on {NAMES.get(dataset, dataset)}", fontsize=11)
        ax.set_xlabel("EPIC iteration")
        ax.grid(alpha=0.3)
        if not roles:
            ax.text(0.5, 0.5, "no results yet", ha="center", va="center", transform=ax.transAxes)
            continue
        for role, values in roles.items():
            name, color = ROLES[role]
            x = np.arange(1, values.shape[1] + 1)
            mean, std = values.mean(0), values.std(0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
            ax.plot(x, mean, marker="o", ms=3, color=color, label=name)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0)
        ax.set_xticks(x)
        ax.set_ylim(-3, 103)
        ax.legend(fontsize=8, loc="center right")
    axes[0][0].set_ylabel("ELMF (% of the role removed)")
    fig.suptitle(title, fontsize=10, wrap=True)
    fig.tight_layout()
    return fig


def draw(table, jobs, store):
    """The figure of `table` (a kind: figure config) from its jobs' results, as a matplotlib figure."""
    data = curves(jobs, store)
    seeds = sorted({len(v) for roles in data.values() for v in roles.values()})
    return elmf_figure(data, f"{table.name}: ELMF per group over EPIC's iterations, mean ± std over "
                             f"{'/'.join(map(str, seeds)) or 'no'} seed(s)")


def render(table, jobs, store, out_dir: Path, stem: str | None = None) -> Path:
    """Draw `table` (a kind: figure config) from its jobs' results into out_dir/<stem or name>.png."""
    fig = draw(table, jobs, store)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem or table.name}.png"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
