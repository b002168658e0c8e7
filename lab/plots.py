"""matplotlib (Agg) figures of the report and of compare, one PNG per function.

Every function takes plain data (no folder access), writes one PNG at `path` and returns it, or
returns None when there is nothing to draw. Colours encode the concurrency model (sync, threaded,
async, hybrid); tricorn's deployments are solid, peers hatched, so "ours vs theirs" reads at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

MODEL_COLOURS = {"sync": "#4c72b0", "threaded": "#55a868", "async": "#dd8452", "hybrid": "#8172b2"}
OTHER_COLOUR = "#999999"
DPI = 100


@dataclass(frozen=True)
class Bar:
    """One bar: a deployment's value, drawn in its model's colour."""

    label: str
    value: float
    model: str
    family: str


def _colour(model: str) -> str:
    return MODEL_COLOURS.get(model, OTHER_COLOUR)


def _grid(count: int, columns: int = 2) -> tuple[int, int]:
    columns = min(columns, max(1, count))
    return math.ceil(count / columns), columns


def _legend(fig: Figure) -> None:
    handles = [Patch(color=c, label=m) for m, c in MODEL_COLOURS.items()]
    handles.append(Patch(facecolor="white", edgecolor="#444", hatch="//", label="not tricorn (hatched)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def bars_by_workload(
    groups: dict[str, list[Bar]], path: Path, title: str, xlabel: str, log: bool = False
) -> Path | None:
    """Small multiples: one horizontal bar chart per workload, bars sorted by value."""
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return None
    rows, cols = _grid(len(groups))
    tallest = max(len(v) for v in groups.values())
    fig, axes = plt.subplots(
        rows, cols, figsize=(6.5 * cols, 0.9 + rows * (0.6 + 0.28 * tallest)), squeeze=False
    )
    for ax, (workload, bars) in zip(axes.flat, groups.items(), strict=False):
        ordered = sorted(bars, key=lambda b: b.value)
        y = range(len(ordered))
        ax.barh(
            list(y),
            [b.value for b in ordered],
            color=[_colour(b.model) for b in ordered],
            hatch=None,
            edgecolor="#333",
            linewidth=0.4,
        )
        for patch, bar in zip(ax.patches, ordered, strict=False):
            if bar.family != "tricorn":
                patch.set_hatch("//")
        ax.set_yticks(list(y), [b.label for b in ordered], fontsize=8)
        ax.set_title(workload, fontsize=10, loc="left")
        ax.set_xlabel(xlabel, fontsize=8)
        if log:
            ax.set_xscale("log")
        peak = max(b.value for b in ordered) or 1.0
        for i, bar in enumerate(ordered):
            ax.text(
                bar.value,
                i,
                f" {bar.value:,.0f}" if bar.value >= 10 else f" {bar.value:.2g}",
                va="center",
                fontsize=7,
            )
        if not log:
            ax.set_xlim(0, peak * 1.18)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    _legend(fig)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return _save(fig, path)


def latency_by_workload(
    groups: dict[str, list[tuple[str, float | None, float | None, float | None]]], path: Path, title: str
) -> Path | None:
    """Small multiples: p50, p95, p99 side by side per deployment (log scale, ms)."""
    groups = {k: [r for r in v if r[3] is not None] for k, v in groups.items()}
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return None
    rows, cols = _grid(len(groups))
    tallest = max(len(v) for v in groups.values())
    fig, axes = plt.subplots(
        rows, cols, figsize=(6.5 * cols, 0.9 + rows * (0.6 + 0.36 * tallest)), squeeze=False
    )
    shades = (("p50", "#a6cee3"), ("p95", "#1f78b4"), ("p99", "#e31a1c"))
    for ax, (workload, entries) in zip(axes.flat, groups.items(), strict=False):
        ordered = sorted(entries, key=lambda e: -(e[3] or 0.0))
        height = 0.26
        for offset, (name, colour) in enumerate(shades):
            values = [max(e[1 + offset] or 0.0, 0.1) for e in ordered]
            ax.barh(
                [i + (offset - 1) * height for i in range(len(ordered))],
                values,
                height=height,
                color=colour,
                label=name,
            )
        ax.set_yticks(range(len(ordered)), [e[0] for e in ordered], fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("ms (log scale)", fontsize=8)
        ax.set_title(workload, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3, which="both")
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def lines_over_time(
    series: dict[str, tuple[list[float], list[float], list[float | None]]],
    path: Path,
    title: str,
    models: dict[str, str] | None = None,
) -> Path | None:
    """Two panels sharing the time axis: requests/s and p99 (ms) per deployment."""
    series = {k: v for k, v in series.items() if v[0]}
    if not series:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    cmap = plt.get_cmap("tab20")
    for i, (label, (t, rps, p99)) in enumerate(sorted(series.items())):
        colour = cmap(i % 20)
        style = "-" if (models or {}).get(label, "tricorn") == "tricorn" else "--"
        top.plot(t, rps, style, color=colour, label=label, linewidth=1.3)
        bottom.plot(t, [v if v is not None else math.nan for v in p99], style, color=colour, linewidth=1.3)
    top.set_ylabel("requests/s")
    bottom.set_ylabel("p99 ms (2 s window)")
    bottom.set_yscale("log")
    bottom.set_xlabel("seconds since load started")
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3, which="both")
    top.legend(fontsize=7, ncol=3, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def heatmap(
    rows: list[str],
    columns: list[str],
    values: list[list[float | None]],
    path: Path,
    title: str,
    unit: str,
    fmt: str = "{:,.0f}",
) -> Path | None:
    """A deployment × workload grid with the value written in each cell (blank where not measured)."""
    if not rows or not columns or all(v is None for row in values for v in row):
        return None
    grid = [[math.nan if v is None else v for v in row] for row in values]
    fig, ax = plt.subplots(figsize=(max(7.0, 2.5 + 1.15 * len(columns)), 1.2 + 0.38 * max(len(rows), 3)))
    image = ax.imshow(grid, aspect="auto", cmap="YlOrRd")
    ax.set_xticks(range(len(columns)), columns, fontsize=8, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for r, row in enumerate(values):
        for c, v in enumerate(row):
            if v is not None:
                ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label=unit, shrink=0.8)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def saturation_curves(
    curves: dict[str, list[tuple[float, float, float | None]]],
    threshold_ms: float,
    marks: dict[str, tuple[float, float] | None],
    path: Path,
    title: str,
) -> Path | None:
    """Two panels against the offered load (users × paced rate), one line per deployment, a point per
    step: achieved requests/s (with the offered = achieved diagonal: a server keeping up stays on it) and
    p99 (with the threshold). A deployment's saturation point is marked on the top panel."""
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    cmap = plt.get_cmap("tab20")
    offered_max = max(p[0] for v in curves.values() for p in v)
    top.plot([0, offered_max], [0, offered_max], ":", color="#999999", label="offered = achieved")
    for i, (label, points) in enumerate(sorted(curves.items())):
        colour = cmap(i % 20)
        style = "o-" if label.startswith("tricorn") else "o--"
        offered = [p[0] for p in points]
        top.plot(offered, [p[1] for p in points], style, color=colour, label=label, markersize=4)
        latencies = [p[2] if p[2] is not None else math.nan for p in points]
        bottom.plot(offered, latencies, style, color=colour, markersize=4)
        mark = marks.get(label)
        if mark is not None:
            top.plot([mark[0]], [mark[1]], marker="*", color=colour, markersize=14, markeredgecolor="black")
    bottom.axhline(threshold_ms, color="red", linestyle=":", label=f"p99 threshold {threshold_ms:g} ms")
    bottom.set_yscale("log")
    top.set_ylabel("achieved requests/s")
    bottom.set_ylabel("p99 ms (end of step)")
    bottom.set_xlabel("offered requests/s (users × paced rate)")
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3, which="both")
    top.legend(fontsize=8, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title + "  (★ = saturation point)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def fault_timelines(
    panels: list[tuple[str, list[float], list[float], list[float], list[tuple[float, str]]]],
    path: Path,
    title: str,
    columns: int = 1,
) -> Path | None:
    """One panel per cell, `columns` per row (e.g. one column per fault scenario): requests/s (line),
    failures/s (red bars, right axis) and the fault events (dashed vertical lines)."""
    if not panels:
        return None
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    width = 11 if columns == 1 else 5.5 * columns
    fig, axes = plt.subplots(rows, columns, figsize=(width, 1.2 + 2.1 * rows), squeeze=False)
    for ax, (label, t, rps, fails, events) in zip(axes.flat, panels, strict=False):
        ax.plot(t, rps, color="#4c72b0", linewidth=1.3, label="requests/s")
        ax.set_ylabel("req/s", fontsize=8)
        ax.set_title(label, fontsize=9, loc="left")
        twin = ax.twinx()
        twin.bar(t, fails, width=0.8, color="#e31a1c", alpha=0.6, label="failures/s")
        twin.set_ylabel("failures/s", fontsize=8, color="#e31a1c")
        twin.set_ylim(0, max([1.0, *fails]) * 1.1)
        ax.set_ylim(bottom=0)
        top = ax.get_ylim()[1]
        for index, (at, kind) in enumerate(events):
            ax.axvline(at, color="black", linestyle="--", linewidth=1)
            ax.text(at, top * (0.95 - 0.12 * (index % 4)), f" {kind}", fontsize=7, va="top")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("seconds since load started", fontsize=8)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, path)


def paired_bars(
    labels: Sequence[str],
    a: Sequence[float | None],
    b: Sequence[float | None],
    names: tuple[str, str],
    path: Path,
    title: str,
    xlabel: str,
    flags: Sequence[bool] | None = None,
) -> Path | None:
    """A vs B per label (horizontal pairs); flagged labels (regressions) are drawn in red."""
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.42 * len(labels)))
    height = 0.4
    ys = range(len(labels))
    ax.barh(
        [y - height / 2 for y in ys], [v or 0.0 for v in a], height=height, color="#bbbbbb", label=names[0]
    )
    ax.barh(
        [y + height / 2 for y in ys], [v or 0.0 for v in b], height=height, color="#4c72b0", label=names[1]
    )
    ax.set_yticks(list(ys), labels, fontsize=8)
    for tick, flagged in zip(ax.get_yticklabels(), flags or [False] * len(labels), strict=False):
        if flagged:
            tick.set_color("#c00000")
            tick.set_fontweight("bold")
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=12)
    ax.invert_yaxis()
    fig.tight_layout()
    return _save(fig, path)


def overlay_over_time(
    panels: list[tuple[str, tuple[list[float], list[float]], tuple[list[float], list[float]]]],
    names: tuple[str, str],
    path: Path,
    title: str,
    ylabel: str,
) -> Path | None:
    """One panel per cell: A and B over time on the same axes."""
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 1.0 + 2.3 * rows), squeeze=False)
    for ax, (label, (ta, va), (tb, vb)) in zip(axes.flat, panels, strict=False):
        ax.plot(ta, va, color="#999999", label=names[0], linewidth=1.2)
        ax.plot(tb, vb, color="#4c72b0", label=names[1], linewidth=1.2)
        ax.set_title(label, fontsize=8, loc="left")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)
