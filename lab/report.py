"""Render a result folder into RESULTS_DIR/report/: report.md, report.html (self-contained) and PNGs.

Reads only the folder (manifest, study, environment, cells and their CSVs, notes.md). Sections:
about the run, summary table with ratios against a baseline, throughput and latency bars, throughput
and p99 over time, failures (and fault timelines), CPU and memory, saturation curves, raw wrk cells,
cells that did not run, conclusions (from notes.md), and how to reproduce.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import analysis, notes, plots, results
from lab.analysis import CellMetrics
from lab.document import Document, Image, Section, Table, Text, to_html, to_markdown
from lab.results import Cell, ResultFolder
from lab.studies import FAULT_SCENARIOS

MIB = 1024 * 1024


@dataclass(frozen=True)
class Rendered:
    markdown: Path
    html: Path
    images: list[Path]
    document: Document


def num(value: float | None, digits: int = 0) -> str:
    """A number for a table ("—" when unknown)."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "—"
    return f"{value / base:.2f}×"


class ReportData:
    """Everything the report shows, computed once from the folder."""

    def __init__(self, path: Path, baseline: str | None = None) -> None:
        self.folder = ResultFolder(path)
        self.manifest = self.folder.manifest()
        self.study_record = self.folder.study()
        self.study: dict[str, Any] = self.study_record["study"]
        self.environment = self.folder.environment()
        self.cells: list[Cell] = self.folder.cells()
        self.metrics: dict[str, CellMetrics] = {c.id: analysis.metrics(self.folder, c) for c in self.cells}
        self.deployments: dict[str, dict[str, Any]] = {d["name"]: d for d in self.study_record["deployments"]}
        self.workload_order = [w["name"] for w in self.study_record["workloads"]]
        self.notes = notes.read(self.folder.path)
        self.baseline, self.baseline_note = self._baseline(baseline or self.manifest.get("baseline"))

    def model(self, deployment: str) -> str:
        return str(self.deployments.get(deployment, {}).get("model", "?"))

    def family(self, deployment: str) -> str:
        return str(self.deployments.get(deployment, {}).get("family", "?"))

    def ran(self, scenario: str = "steady", generator: str = "locust") -> list[CellMetrics]:
        return [
            m
            for m in self.metrics.values()
            if m.ran and m.scenario == scenario and m.generator == generator and m.requests
        ]

    def _baseline(self, wanted: str | None) -> tuple[str | None, str]:
        ran = {m.deployment for m in self.ran()}
        if wanted and wanted in ran:
            return wanted, f"Ratios are against **{wanted}**."
        if not ran:
            return None, "No steady cell ran, so there is no baseline."
        order = [name for name in self.deployments if name in ran]
        peers = [name for name in order if self.family(name) == "peer"]
        chosen = (peers or order)[0]
        why = f"the requested baseline {wanted!r} did not run here" if wanted else "no baseline was named"
        return chosen, f"Ratios are against **{chosen}** ({why})."

    def by_workload(
        self, scenario: str = "steady", generator: str = "locust"
    ) -> dict[str, list[CellMetrics]]:
        groups: dict[str, list[CellMetrics]] = defaultdict(list)
        for m in self.ran(scenario, generator):
            groups[m.workload].append(m)
        return {w: sorted(groups[w], key=lambda m: -(m.rps or 0)) for w in self.workload_order if w in groups}

    def baseline_of(
        self, workload: str, scenario: str = "steady", generator: str = "locust"
    ) -> CellMetrics | None:
        for m in self.ran(scenario, generator):
            if m.workload == workload and m.deployment == self.baseline:
                return m
        return None


def _memory(m: CellMetrics) -> float | None:
    value = m.server_pss_peak if m.server_pss_peak is not None else m.server_rss_peak
    return value / MIB if value is not None else None


def _about(data: ReportData) -> Section:
    env = data.environment
    man = data.manifest
    git = env.get("git", {})
    started = man.get("started")
    finished = man.get("finished")
    packages = env.get("packages", {})
    servers = ", ".join(
        f"{k} {v}" for k, v in packages.items() if v and k not in ("matplotlib", "httpx", "rich")
    )
    study = data.study
    python = env.get("python", {})
    loadavg = ", ".join(f"{v:.2f}" for v in env.get("loadavg_at_start", []))
    when = "?"
    if started and finished:
        when = (
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(started))}, "
            f"{(finished - started) / 60:.1f} min"
        )
    lines = [
        f"- **Study**: `{study['name']}`{' (quick mode)' if man.get('quick') else ''} — "
        f"{study['description']}",
        f"- **When**: {when}, status `{man.get('status')}`",
        f"- **Machine**: {env.get('cpu_model')} × {env.get('cpu_count')} CPUs"
        f", {num((env.get('memory_bytes') or 0) / 2**30, 1)} GiB, {env.get('kernel')}",
        f"- **Load average at start**: {loadavg} "
        "(the machine may be shared: see each cell's `loadavg_before`)",
        f"- **Python**: {python.get('version')} ({python.get('implementation')})",
        f"- **Git**: `{git.get('describe')}`{' (with uncommitted changes)' if git.get('dirty') else ''}",
        f"- **Software**: {servers}; wrk: {env.get('wrk') or 'not installed'}",
        f"- **Load**: {study['users']} Locust users, {study['duration_s']:g} s per cell, "
        f"{study['locust_workers']} Locust worker process(es), seed {man.get('seed')}, "
        f"upstream delay {study['upstream_delay_ms']} ms, {study['threads']} threads per threaded worker",
    ]
    section = Section("About this run").add(Text("\n".join(lines)))
    if data.notes.get(""):
        section.add(Text(data.notes[""]))
    return section


def _facts(data: ReportData) -> list[str]:
    """Plain sentences computed from the numbers (no judgement beyond comparisons)."""
    facts: list[str] = []
    for workload, ms in data.by_workload().items():
        best = ms[0]
        line = (
            f"**{workload}**: fastest {best.deployment} at {num(best.rps)} req/s (p99 {num(best.p99_ms)} ms)"
        )
        ours = [m for m in ms if data.family(m.deployment) == "tricorn"]
        theirs = [m for m in ms if data.family(m.deployment) == "peer"]
        if ours and theirs:
            line += (
                f"; best tricorn {ours[0].deployment} is {ratio(ours[0].rps, theirs[0].rps)} "
                f"the best peer {theirs[0].deployment}"
            )
        models: dict[str, CellMetrics] = {}
        for m in ms:
            models.setdefault(data.model(m.deployment), m)
        if len(models) > 1:
            line += "; best per model: " + ", ".join(f"{k} {num(v.rps)}" for k, v in models.items())
        facts.append(line)
    bound = [m for m in data.metrics.values() if m.loadgen_bound]
    if bound:
        facts.append(
            f"In {len(bound)} cell(s) a Locust process averaged ≥ {analysis.LOADGEN_BOUND_CPU:.0f} % "
            "of a core: there the generator, not the server, may have set the ceiling "
            "(see Resources and the wrk cells)."
        )
    return facts


def _summary(data: ReportData) -> Section:
    rows: list[list[str]] = []
    for workload, ms in data.by_workload().items():
        base = data.baseline_of(workload)
        for m in ms:
            rows.append(
                [
                    workload,
                    m.deployment,
                    data.model(m.deployment),
                    num(m.rps),
                    num(m.p50_ms),
                    num(m.p95_ms),
                    num(m.p99_ms),
                    num(m.failure_pct, 2),
                    num(m.server_cpu_mean),
                    num(_memory(m)),
                    ratio(m.rps, base.rps if base else None),
                    ratio(m.p99_ms, base.p99_ms if base else None),
                    num(m.loadavg_before, 1),
                    "⚠ generator-bound" if m.loadgen_bound else "",
                ]
            )
    section = Section("Summary")
    facts = _facts(data)
    if facts:
        section.add(Text("\n".join(f"- {f}" for f in facts)))
    section.add(
        Text(
            data.baseline_note + " For req/s higher is better; for p99 lower is better. "
            "CPU is the server's processes summed (100 = one core); memory is their peak PSS "
            "(RSS where PSS was not readable); load is the machine's 1-minute load average when the cell "
            "started (above the CPU count, other work was competing)."
        )
    )
    section.add(
        Table(
            [
                "workload",
                "deployment",
                "model",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "fail %",
                "CPU %",
                "mem MiB",
                "× req/s",
                "× p99",
                "load",
                "note",
            ],
            rows,
            align_right_from=3,
        )
    )
    if data.notes.get("summary"):
        section.add(Text(data.notes["summary"]))
    return section


def _bars(data: ReportData, attribute: str) -> dict[str, list[plots.Bar]]:
    return {
        w: [
            plots.Bar(
                m.deployment,
                getattr(m, attribute) or 0.0,
                data.model(m.deployment),
                data.family(m.deployment),
            )
            for m in ms
        ]
        for w, ms in data.by_workload().items()
    }


def _with_notes(data: ReportData, key: str, section: Section) -> Section:
    if data.notes.get(key):
        section.add(Text(data.notes[key]))
    return section


def _figures(data: ReportData, out: Path, images: list[Path]) -> list[Section]:
    sections: list[Section] = []

    def image(path: Path | None, alt: str) -> list[Image]:
        if path is None:
            return []
        images.append(path)
        return [Image(path, alt)]

    throughput = image(
        plots.bars_by_workload(
            _bars(data, "ok_rps"),
            out / "throughput.png",
            "Successful requests/s per deployment (Locust, steady load)",
            "successful requests/s",
        ),
        "requests per second per deployment and workload",
    )
    if throughput:
        sections.append(_with_notes(data, "throughput", Section("Throughput").add(*throughput)))
    latency = image(
        plots.latency_by_workload(
            {
                w: [(m.deployment, m.p50_ms, m.p95_ms, m.p99_ms) for m in ms]
                for w, ms in data.by_workload().items()
            },
            out / "latency.png",
            "Latency percentiles per deployment (whole run)",
        ),
        "p50, p95, p99 per deployment",
    )
    if latency:
        sections.append(_with_notes(data, "latency", Section("Latency").add(*latency)))

    over_time = Section("Over time")
    for workload, ms in data.by_workload().items():
        series = {}
        for m in ms:
            cell = next(c for c in data.cells if c.id == m.cell_id)
            points = analysis.timeseries(data.folder, cell)
            series[m.deployment] = (
                [p.t for p in points],
                [p.rps for p in points],
                [p.p99_ms for p in points],
            )
        over_time.add(
            *image(
                plots.lines_over_time(
                    series,
                    out / f"over-time-{workload}.png",
                    f"{workload}: requests/s and p99 over time",
                    {d: data.family(d) for d in series},
                ),
                f"{workload} over time",
            )
        )
    if over_time.blocks:
        sections.append(_with_notes(data, "over-time", over_time))
    return sections


def _event_text(cell: Cell) -> str:
    """The fault events of a cell, with their time from the start of the load."""
    origin = cell.load_started or 0.0
    return "; ".join(f"{e['time'] - origin:.2f} s {e['kind']}: {e['detail']}" for e in cell.faults) or "—"


def _failures(data: ReportData, out: Path, images: list[Path]) -> Section:
    section = Section("Failures")
    failing = [m for m in data.metrics.values() if m.ran and m.failures]
    if failing:
        cells = {c.id: c for c in data.cells}
        rows = [
            [
                m.deployment,
                m.workload,
                m.scenario,
                analysis.top_failure(data.folder, cells[m.cell_id]) or "—",
                num(m.failures),
                num(m.requests),
                num(m.failure_pct, 2),
            ]
            for m in sorted(failing, key=lambda m: -(m.failure_pct or 0))
        ]
        section.add(
            Table(
                ["deployment", "workload", "scenario", "most frequent error", "failed", "requests", "fail %"],
                rows,
                align_right_from=4,
            )
        )
        section.add(Text("Every failure message is in the cell's `locust_failures.csv`."))
    else:
        section.add(Text("No request failed in any cell that ran."))
    panels = []
    for cell in data.cells:
        if cell.status != results.OK or cell.scenario not in FAULT_SCENARIOS:
            continue
        points = analysis.timeseries(data.folder, cell)
        origin = cell.load_started or 0.0
        events = [
            (e["time"] - origin, e["kind"]) for e in cell.faults if e["kind"] not in ("slow-clients-end",)
        ]
        panels.append(
            (
                f"{cell.deployment} — {cell.scenario}",
                [p.t for p in points],
                [p.rps for p in points],
                [p.failures_per_s for p in points],
                events,
            )
        )
    scenarios = {c.scenario for c in data.cells if c.status == results.OK and c.scenario in FAULT_SCENARIOS}
    path = plots.fault_timelines(
        panels, out / "faults.png", "Faults during load: throughput, failures, events", columns=len(scenarios)
    )
    if path is not None:
        images.append(path)
        section.add(Image(path, "throughput and failures over time around injected faults"))
        rows = []
        for cell in data.cells:
            if cell.scenario in FAULT_SCENARIOS and cell.status == results.OK:
                m = data.metrics[cell.id]
                rows.append(
                    [
                        cell.deployment,
                        cell.scenario,
                        _event_text(cell),
                        num(m.failures),
                        num(m.requests),
                    ]
                )
        section.add(
            Table(["deployment", "scenario", "events", "failed", "requests"], rows, align_right_from=3)
        )
    return _with_notes(data, "failures", section)


def _resources(data: ReportData, out: Path, images: list[Path]) -> Section:
    section = Section("Resources")
    groups = data.by_workload()
    deployments = [
        d for d in data.deployments if any(m.deployment == d for ms in groups.values() for m in ms)
    ]
    workloads = list(groups)

    def grid(attribute: Any) -> list[list[float | None]]:
        index = {(m.deployment, m.workload): m for ms in groups.values() for m in ms}
        return [
            [attribute(index[(d, w)]) if (d, w) in index else None for w in workloads] for d in deployments
        ]

    for path, alt in (
        (
            plots.heatmap(
                deployments,
                workloads,
                grid(lambda m: m.server_cpu_mean),
                out / "cpu.png",
                "Server CPU during load (all processes, 100 = one core)",
                "CPU %",
            ),
            "server CPU",
        ),
        (
            plots.heatmap(
                deployments,
                workloads,
                grid(_memory),
                out / "memory.png",
                "Server memory at peak (PSS of all processes)",
                "MiB",
            ),
            "server memory",
        ),
    ):
        if path is not None:
            images.append(path)
            section.add(Image(path, alt))
    rows = [
        [m.deployment, m.workload, m.scenario, num(m.loadgen_cpu_max), num(m.server_cpu_mean)]
        for m in data.metrics.values()
        if m.ran and m.loadgen_cpu_max is not None
    ]
    bound = [
        r
        for r, m in zip(
            rows, [m for m in data.metrics.values() if m.ran and m.loadgen_cpu_max is not None], strict=True
        )
        if m.loadgen_bound
    ]
    if bound:
        section.add(
            Text(
                f"**Warning — load generator bottleneck**: in these cells a load-generator process "
                f"averaged ≥ {analysis.LOADGEN_BOUND_CPU:.0f} % of a core, so the server may be "
                "faster than measured. Add Locust workers (`--locust-workers`), or read the wrk cells."
            )
        )
        section.add(
            Table(
                ["deployment", "workload", "scenario", "generator CPU %", "server CPU %"],
                bound,
                align_right_from=3,
            )
        )
    elif rows:
        section.add(
            Text(
                f"No load-generator process averaged ≥ {analysis.LOADGEN_BOUND_CPU:.0f} % of a core "
                f"(highest: {num(max(float(r[3].replace(',', '')) for r in rows if r[3] != '—'))} %)."
            )
        )
    return _with_notes(data, "resources", section)


def _saturation(data: ReportData, out: Path, images: list[Path]) -> Section | None:
    step_cells = [c for c in data.cells if c.status == results.OK and c.workload == "ramp"]
    if not step_cells:
        return None
    threshold = float(data.study.get("p99_threshold_ms", 100.0))
    user_rps = float(data.study["step"]["user_rps"])
    curves: dict[str, list[tuple[float, float, float | None]]] = {}
    marks: dict[str, tuple[float, float] | None] = {}
    rows = []
    for cell in step_cells:
        found = analysis.steps(data.folder, cell, analysis.planned_users(data.study["step"]))
        point = analysis.saturation(found, threshold)
        curves[cell.deployment] = [(s.users * user_rps, s.rps, s.p99_ms) for s in found]
        marks[cell.deployment] = None
        if point.crossed and point.rps is not None and point.users is not None:
            marks[cell.deployment] = (point.users * user_rps, point.rps)
        rows.append(
            [
                cell.deployment,
                data.model(cell.deployment),
                num(point.rps) if point.crossed else "not reached",
                num(point.users) if point.crossed else "—",
                num(max((s.rps for s in found), default=None)),
                num(max((s.p99_ms or 0.0 for s in found), default=None)),
            ]
        )
    rows.sort(key=lambda r: -float(r[4].replace(",", "")) if r[4] != "—" else 0.0)
    section = Section("Saturation")
    path = plots.saturation_curves(
        curves,
        threshold,
        marks,
        out / "saturation.png",
        f"Saturation: throughput and p99 as offered load grows (p99 threshold {threshold:g} ms)",
    )
    if path is not None:
        images.append(path)
        section.add(Image(path, "saturation curves"))
    section.add(
        Text(
            f"Each user paces itself at {user_rps:g} requests/s, so the offered load grows with every "
            f"step. The saturation point is the highest throughput reached by a step before the first "
            f'step whose p99 passed {threshold:g} ms; "not reached" means p99 stayed under it up to the '
            "last step (the offered load never exceeded what the server sustains)."
        )
    )
    section.add(
        Table(
            ["deployment", "model", "saturation req/s", "at users", "max req/s seen", "max p99 ms"],
            rows,
            align_right_from=2,
        )
    )
    return _with_notes(data, "saturation", section)


def _raw(data: ReportData, out: Path, images: list[Path]) -> Section | None:
    groups = data.by_workload("wrk", "wrk")
    if not groups:
        return None
    section = Section("Raw throughput (wrk)")
    wrk_settings = data.study.get("wrk", {})
    path = plots.bars_by_workload(
        {
            w: [
                plots.Bar(m.deployment, m.rps or 0.0, data.model(m.deployment), data.family(m.deployment))
                for m in ms
            ]
            for w, ms in groups.items()
        },
        out / "raw.png",
        f"Requests/s with wrk -t{wrk_settings.get('threads')} -c{wrk_settings.get('connections')}",
        "requests/s",
    )
    if path is not None:
        images.append(path)
        section.add(Image(path, "wrk requests per second"))
    rows = []
    for workload, ms in groups.items():
        base = data.baseline_of(workload, "wrk", "wrk")
        rows += [
            [
                workload,
                m.deployment,
                num(m.rps),
                num(m.p50_ms, 2),
                num(m.p99_ms, 2),
                num(m.failures),
                num(m.server_cpu_mean),
                ratio(m.rps, base.rps if base else None),
            ]
            for m in ms
        ]
    section.add(
        Text(
            "wrk is a C load generator: these cells show what the servers do when the generator is "
            "not the limit. Errors are socket errors plus non-2xx answers."
        )
    )
    section.add(
        Table(
            ["workload", "deployment", "req/s", "p50 ms", "p99 ms", "errors", "CPU %", "× req/s"],
            rows,
            align_right_from=2,
        )
    )
    return _with_notes(data, "raw", section)


def _not_run(data: ReportData) -> Section | None:
    rows = [
        [c.deployment, c.workload, c.scenario, c.status, c.reason or ""]
        for c in data.cells
        if c.status != results.OK
    ]
    if not rows:
        return None
    collapsed: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for deployment, workload, scenario, status, reason in rows:
        collapsed[(deployment, status, reason)].append(f"{workload}/{scenario}")
    table = [
        [d, s, r, ", ".join(cells) if len(cells) < 6 else f"all {len(cells)} cells"]
        for (d, s, r), cells in collapsed.items()
    ]
    return Section("Cells that did not run").add(
        Text(
            "Unavailable: the server is not installed (or not built yet) here. Not applicable: the scenario "
            "makes no sense for that server. Failed: it was tried and did not work — the reason and the "
            "server log are in the cell folder."
        ),
        Table(["deployment", "status", "reason", "cells"], table, align_right_from=99),
    )


def _shown_path(path: Path) -> str:
    """The folder relative to the repository when it is inside it, else its name."""
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return path.name


def _reproduce(data: ReportData) -> Section:
    argv = " ".join(data.manifest.get("argv", []))
    return Section("Reproduce").add(
        Text(
            "From the repository root, in an environment with `lab/requirements.txt` (and the peers of "
            "`lab/requirements-peers.txt`) installed:\n\n"
            f"- run: `{argv}` (seed {data.manifest.get('seed')})\n"
            f"- render this report again: `python -m lab report {_shown_path(data.folder.path)}`\n"
            "- every cell's exact server and Locust commands, environment and ports are in "
            "`cells/*/cell.json`; the package versions in `pip-freeze.txt`; the machine in "
            "`environment.json`."
        )
    )


def build(data: ReportData, out: Path) -> tuple[Document, list[Path]]:
    """The report document and the PNGs written for it."""
    images: list[Path] = []
    document = Document(f"tricorn lab — {data.study['name']} ({data.folder.name})")
    document.sections.append(_about(data))
    document.sections.append(_summary(data))
    document.sections += _figures(data, out, images)
    document.sections.append(_failures(data, out, images))
    document.sections.append(_resources(data, out, images))
    for optional in (_saturation(data, out, images), _raw(data, out, images), _not_run(data)):
        if optional is not None:
            document.sections.append(optional)
    document.sections.append(
        Section("Conclusions").add(
            Text(
                data.notes.get("conclusions")
                or "No conclusions written for this run. Write them in plain words in "
                "`notes.md` in the result folder (a `## conclusions` section) and render again."
            )
        )
    )
    document.sections.append(_reproduce(data))
    return document, images


def render(path: Path, baseline: str | None = None, out: Path | None = None) -> Rendered:
    """Write report.md, report.html and the PNGs; return their paths."""
    data = ReportData(Path(path), baseline)
    target = Path(out) if out is not None else data.folder.path / results.REPORT
    target.mkdir(parents=True, exist_ok=True)
    document, images = build(data, target)
    markdown = target / "report.md"
    markdown.write_text(to_markdown(document, target))
    page = target / "report.html"
    page.write_text(to_html(document))
    return Rendered(markdown, page, images, document)
