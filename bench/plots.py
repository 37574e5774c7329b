"""Accuracy-vs-speed plots of a ``dllm bench`` run (matplotlib, Agg backend; the ``bench`` extra).

``plot_<task>.png`` per task and ``plot_average.png`` (task averages): x = tokens per forward (answer tokens /
NFE; log2 when it spans more than 8x), y = accuracy (%), one line per strategy family through its sweep points (sorted by x), and the family's
oracle curve dashed in the same colour. The average plot also marks the PBx accuracy levels.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

__all__ = ["plot_file_name", "write_plots", "require_matplotlib"]


def require_matplotlib():
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError saying what to install."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'dllm[bench]' (or pass --no-plots).") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_file_name(task: str) -> str:
    """``waiting_line/copy`` -> ``plot_waiting_line_copy.png`` (``average`` -> ``plot_average.png``)."""
    return "plot_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", task).strip("_") + ".png"


def _curve(points):
    pts = sorted((x, y) for x, y in points if x is not None and y is not None)
    return [p[0] for p in pts], [100.0 * p[1] for p in pts]


def _one_plot(plt, path: Path, title: str, families: Mapping[str, list], oracles: Mapping[str, list],
              levels=()) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    for i, (fam, pts) in enumerate(families.items()):
        c = colors[i % len(colors)]
        xs, ys = _curve(pts)
        if xs:
            ax.plot(xs, ys, marker="o", color=c, label=fam)
        if fam in oracles:
            oxs, oys = _curve(oracles[fam])
            if oxs:
                ax.plot(oxs, oys, linestyle="--", marker=".", color=c, alpha=0.7, label=f"oracle ({fam})")
    xs_all = [x for line in ax.get_lines() for x in line.get_xdata() if x and x > 0]
    if xs_all and max(xs_all) / min(xs_all) > 8:  # wide speed range (1 ... 32 tokens/forward): log2 axis
        ax.set_xscale("log", base=2)
    for y in levels:
        ax.axhline(y, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xlabel("tokens per forward (answer tokens / NFE)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if families:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(summary: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``plot_<task>.png`` for every task and ``plot_average.png``; returns the paths."""
    plt = require_matplotlib()
    out_dir = Path(out_dir)
    fams = summary.get("families", {})
    curves = summary.get("oracle_curves", {})
    written = []
    targets = list(summary.get("tasks", [])) + ["average"]
    for task in targets:
        rows = summary["averages"] if task == "average" else [r for r in summary["results"] if r["task"] == task]
        by_label = {r["setting"]: r for r in rows}
        points = {fam: [(by_label[lab]["tokens_per_forward"], by_label[lab]["accuracy"])
                        for lab in labels if lab in by_label] for fam, labels in fams.items()}
        oracles = {}
        for fam, curve in curves.items():
            if fam not in fams or len(fams[fam]) < 2:
                continue  # a single setting's oracle is the setting itself
            pts = []
            for p in curve:
                agg = p["average"] if task == "average" else p["tasks"].get(task)
                if agg:
                    pts.append((agg["tokens_per_forward"], agg["accuracy"]))
            oracles[fam] = pts
        title = "task average" if task == "average" else task
        path = out_dir / plot_file_name(task)
        levels = summary.get("pbx_thresholds", ()) if task == "average" else ()
        _one_plot(plt, path, title, points, oracles, levels)
        written.append(path)
    return written
