"""Compare two result folders, A (before) and B (after): ratios per matching cell, overlay plots, and
regression flags.

Cells match by ID (deployment × workload × scenario) when both ran. A cell regressed when B's
throughput fell below A's by more than `tolerance` (relative), or B's p99 rose above A's by more than
`tolerance`; it improved in the opposite cases. Differences in the conditions (git revision, machine,
Python, server versions, study settings) are listed, because a ratio means little across them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab import analysis, plots
from lab.analysis import CellMetrics
from lab.document import Document, Image, Section, Table, Text, to_html, to_markdown
from lab.report import num, ratio
from lab.results import OK, ResultFolder

MAX_OVERLAYS = 12


@dataclass(frozen=True)
class Pair:
    """One cell present in both folders."""

    a: CellMetrics
    b: CellMetrics
    verdict: str  # "regression" | "improvement" | "same"
    why: str

    @property
    def label(self) -> str:
        return f"{self.a.deployment} · {self.a.workload} · {self.a.scenario}"


@dataclass(frozen=True)
class Compared:
    markdown: Path
    html: Path
    images: list[Path]
    pairs: list[Pair]
    regressions: list[str]


def judge(a: CellMetrics, b: CellMetrics, tolerance: float) -> tuple[str, str]:
    """Verdict and reason for one matched cell."""
    worse: list[str] = []
    better: list[str] = []
    if a.rps and b.rps is not None:
        change = b.rps / a.rps - 1.0
        (worse if change < -tolerance else better if change > tolerance else []).append(
            f"req/s {change:+.0%}"
        )
    if a.p99_ms and b.p99_ms is not None:
        change = b.p99_ms / a.p99_ms - 1.0
        (worse if change > tolerance else better if change < -tolerance else []).append(f"p99 {change:+.0%}")
    if (b.failures or 0) > (a.failures or 0) and (b.failure_pct or 0) > (a.failure_pct or 0) + 0.1:
        worse.append(f"failures {a.failures} → {b.failures}")
    if worse:
        return "regression", ", ".join(worse)
    if better:
        return "improvement", ", ".join(better)
    return "same", f"within ±{tolerance:.0%}"


def _metrics(folder: ResultFolder) -> dict[str, CellMetrics]:
    return {cell.id: analysis.metrics(folder, cell) for cell in folder.cells()}


def _condition_rows(a: ResultFolder, b: ResultFolder) -> list[list[str]]:
    ea, eb = a.environment(), b.environment()
    sa, sb = a.study()["study"], b.study()["study"]
    facts = [
        ("git revision", ea.get("git", {}).get("describe"), eb.get("git", {}).get("describe")),
        (
            "CPU",
            f"{ea.get('cpu_model')} × {ea.get('cpu_count')}",
            f"{eb.get('cpu_model')} × {eb.get('cpu_count')}",
        ),
        ("kernel", ea.get("kernel"), eb.get("kernel")),
        ("Python", ea.get("python", {}).get("version"), eb.get("python", {}).get("version")),
        (
            "load average at start",
            ", ".join(f"{v:.2f}" for v in ea.get("loadavg_at_start", [])),
            ", ".join(f"{v:.2f}" for v in eb.get("loadavg_at_start", [])),
        ),
    ]
    for key in ("users", "duration_s", "locust_workers", "threads", "upstream_delay_ms", "quick_mode"):
        facts.append((f"study {key}", sa.get(key), sb.get(key)))
    for package in sorted(set(ea.get("packages", {})) | set(eb.get("packages", {}))):
        facts.append((package, ea.get("packages", {}).get(package), eb.get("packages", {}).get(package)))
    return [[name, str(x), str(y), "" if x == y else "differs"] for name, x, y in facts]


def render(path_a: Path, path_b: Path, tolerance: float = 0.10, out: Path | None = None) -> Compared:
    """Write compare.md, compare.html and PNGs (default folder: B/compare-vs-<A>)."""
    a, b = ResultFolder(Path(path_a)), ResultFolder(Path(path_b))
    target = Path(out) if out is not None else b.path / f"compare-vs-{a.name}"
    target.mkdir(parents=True, exist_ok=True)
    ma, mb = _metrics(a), _metrics(b)
    shared = [
        cid
        for cid in ma
        if cid in mb
        and ma[cid].status == OK
        and mb[cid].status == OK
        and ma[cid].requests
        and mb[cid].requests
    ]
    pairs = [Pair(ma[cid], mb[cid], *judge(ma[cid], mb[cid], tolerance)) for cid in shared]
    regressions = [f"{p.label}: {p.why}" for p in pairs if p.verdict == "regression"]
    names = (f"A: {a.name}", f"B: {b.name}")

    images: list[Path] = []
    doc = Document(f"tricorn lab — compare {b.name} (B) against {a.name} (A)")
    summary = Section("Verdict").add(
        Text(
            f"{len(pairs)} cells ran in both; **{len(regressions)} regression(s)**, "
            f"{sum(p.verdict == 'improvement' for p in pairs)} improvement(s), "
            f"{sum(p.verdict == 'same' for p in pairs)} within ±{tolerance:.0%}. "
            "A regression is B's req/s lower, or its p99 higher, than A's by more than the tolerance "
            "(or more failures)."
        )
    )
    if regressions:
        summary.add(Text("\n".join(f"- **{r}**" for r in regressions)))
    doc.sections.append(summary)
    rows = [
        [
            p.a.deployment,
            p.a.workload,
            p.a.scenario,
            num(p.a.rps),
            num(p.b.rps),
            ratio(p.b.rps, p.a.rps),
            num(p.a.p99_ms),
            num(p.b.p99_ms),
            ratio(p.b.p99_ms, p.a.p99_ms),
            f"{p.a.failures or 0} → {p.b.failures or 0}",
            (
                "**REGRESSION** "
                if p.verdict == "regression"
                else "improvement "
                if p.verdict == "improvement"
                else ""
            )
            + p.why,
        ]
        for p in pairs
    ]
    doc.sections.append(
        Section("Ratios (B / A)").add(
            Table(
                [
                    "deployment",
                    "workload",
                    "scenario",
                    "A req/s",
                    "B req/s",
                    "× req/s",
                    "A p99",
                    "B p99",
                    "× p99",
                    "failures",
                    "verdict",
                ],
                rows,
                align_right_from=3,
            )
        )
    )

    figures = Section("Overlays")
    flags = [p.verdict == "regression" for p in pairs]
    for path, alt in (
        (
            plots.paired_bars(
                [p.label for p in pairs],
                [p.a.rps for p in pairs],
                [p.b.rps for p in pairs],
                names,
                target / "compare-rps.png",
                "Requests/s, A vs B (regressions in red)",
                "requests/s",
                flags,
            ),
            "requests per second A vs B",
        ),
        (
            plots.paired_bars(
                [p.label for p in pairs],
                [p.a.p99_ms for p in pairs],
                [p.b.p99_ms for p in pairs],
                names,
                target / "compare-p99.png",
                "p99 latency, A vs B (regressions in red)",
                "ms",
                flags,
            ),
            "p99 A vs B",
        ),
    ):
        if path is not None:
            images.append(path)
            figures.add(Image(path, alt))
    cells_a = {c.id: c for c in a.cells()}
    cells_b = {c.id: c for c in b.cells()}
    chosen = sorted((p for p in pairs if p.a.generator == "locust"), key=lambda p: p.verdict != "regression")
    panels = []
    for p in chosen[:MAX_OVERLAYS]:
        ta = analysis.timeseries(a, cells_a[p.a.cell_id])
        tb = analysis.timeseries(b, cells_b[p.b.cell_id])
        panels.append(
            (p.label, ([x.t for x in ta], [x.rps for x in ta]), ([x.t for x in tb], [x.rps for x in tb]))
        )
    path = plots.overlay_over_time(
        panels, names, target / "compare-over-time.png", "Requests/s over time, A and B overlaid", "req/s"
    )
    if path is not None:
        images.append(path)
        figures.add(Image(path, "requests per second over time, A and B"))
    if figures.blocks:
        doc.sections.append(figures)

    only = [
        [
            cid,
            "A only" if cid in ma and cid not in mb else "B only" if cid not in ma else "not run in both",
            f"{ma[cid].status if cid in ma else '—'} / {mb[cid].status if cid in mb else '—'}",
        ]
        for cid in sorted(set(ma) | set(mb))
        if cid not in shared
    ]
    if only:
        doc.sections.append(
            Section("Cells not compared").add(
                Table(["cell", "why", "status A / B"], only, align_right_from=99)
            )
        )
    doc.sections.append(
        Section("Conditions").add(
            Text("Ratios across different machines, loads or versions compare those too."),
            Table(["fact", "A", "B", ""], _condition_rows(a, b), align_right_from=99),
        )
    )
    markdown = target / "compare.md"
    markdown.write_text(to_markdown(doc, target))
    page = target / "compare.html"
    page.write_text(to_html(doc))
    return Compared(markdown, page, images, pairs, regressions)
