"""Numbers from a result folder: per-cell metrics, time series, resource use, steps and saturation.

Only reads the folder (CSV/JSON/text written by the runner). Conventions:
- Throughput over time is computed from Locust's *cumulative* counts (delta requests / delta seconds),
  not from its smoothed "current RPS"; latency over time uses its windowed "current" percentiles.
- Server CPU is the sum over the server's processes at each sample tick (100 % = one core), averaged
  over the load window; memory is the per-tick sum of RSS (and PSS, which counts shared pages once
  across forked workers), reported at its peak.
- The load generator is flagged as the bottleneck when any of its processes averaged
  ≥ LOADGEN_BOUND_CPU % of a core during the load.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from lab import locust_csv, results, wrk
from lab.results import Cell, ResultFolder
from lab.sampler import Sample, read_csv

LOADGEN_BOUND_CPU = 90.0


@dataclass(frozen=True)
class CellMetrics:
    """The headline numbers of one cell (None where not measured)."""

    cell_id: str
    deployment: str
    workload: str
    scenario: str
    generator: str
    status: str
    reason: str | None
    requests: int | None = None
    failures: int | None = None
    rps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    server_cpu_mean: float | None = None
    server_cpu_peak: float | None = None
    server_rss_peak: int | None = None
    server_pss_peak: int | None = None
    server_processes: int | None = None
    loadgen_cpu_max: float | None = None
    duration_s: float | None = None
    loadavg_before: float | None = None  # the machine's 1-minute load average when the cell started

    @property
    def failure_pct(self) -> float | None:
        if not self.requests:
            return None if self.requests is None else 0.0
        return 100.0 * (self.failures or 0) / self.requests

    @property
    def ok_rps(self) -> float | None:
        """Requests/s that succeeded (Locust's requests/s counts failed requests too)."""
        if self.rps is None or not self.requests:
            return self.rps
        return self.rps * (self.requests - (self.failures or 0)) / self.requests

    @property
    def loadgen_bound(self) -> bool:
        return self.loadgen_cpu_max is not None and self.loadgen_cpu_max >= LOADGEN_BOUND_CPU

    @property
    def ran(self) -> bool:
        return self.status == results.OK


@dataclass(frozen=True)
class Point:
    """One second of a Locust run (t from the start of the load)."""

    t: float
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class ResourcePoint:
    """One sampler tick of one process group (t from the start of the load)."""

    t: float
    cpu_percent: float
    rss_bytes: int
    pss_bytes: int | None
    processes: int


@dataclass(frozen=True)
class Step:
    """One step of a step-profile run."""

    users: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    failures: int
    seconds: float


@dataclass(frozen=True)
class Saturation:
    """The throughput sustained before p99 passed the threshold."""

    threshold_ms: float
    rps: float | None  # highest throughput of the steps before the first crossing
    users: int | None
    crossed: bool  # False: p99 never passed the threshold (the server was not saturated)


def load_window(cell: Cell) -> tuple[float, float] | None:
    if cell.load_started is None or cell.load_finished is None:
        return None
    return cell.load_started, cell.load_finished


def samples(folder: ResultFolder, cell: Cell) -> list[Sample]:
    path = folder.cell_dir(cell.id) / results.RESOURCES_CSV
    return read_csv(path) if path.is_file() else []


def resource_series(folder: ResultFolder, cell: Cell, group: str) -> list[ResourcePoint]:
    """Per-tick sums of CPU and memory over the processes of `group` ("server" or "loadgen")."""
    ticks: dict[float, list[Sample]] = defaultdict(list)
    for sample in samples(folder, cell):
        if sample.group == group:
            ticks[sample.time].append(sample)
    origin = cell.load_started or (min(ticks) if ticks else 0.0)
    out: list[ResourcePoint] = []
    for time in sorted(ticks):
        rows = ticks[time]
        pss = [row.pss_bytes for row in rows]
        out.append(
            ResourcePoint(
                time - origin,
                sum(row.cpu_percent for row in rows),
                sum(row.rss_bytes for row in rows),
                sum(p for p in pss if p is not None) if all(p is not None for p in pss) else None,
                len(rows),
            )
        )
    return out


def _in_load(points: list[ResourcePoint], cell: Cell) -> list[ResourcePoint]:
    window = load_window(cell)
    if window is None:
        return points
    length = window[1] - window[0]
    inside = [p for p in points if 0.0 <= p.t <= length]
    return inside or points


def _loadgen_cpu_max(folder: ResultFolder, cell: Cell) -> float | None:
    """The highest per-process mean CPU among the load generator's processes during the load."""
    window = load_window(cell)
    per_pid: dict[int, list[float]] = defaultdict(list)
    for sample in samples(folder, cell):
        if sample.group != "loadgen":
            continue
        if window is None or window[0] <= sample.time <= window[1]:
            per_pid[sample.pid].append(sample.cpu_percent)
    means = [sum(values) / len(values) for values in per_pid.values() if values]
    return max(means) if means else None


def metrics(folder: ResultFolder, cell: Cell) -> CellMetrics:
    """Headline numbers of `cell` from its files."""
    base = CellMetrics(
        cell.id,
        cell.deployment,
        cell.workload,
        cell.scenario,
        cell.generator,
        cell.status,
        cell.reason,
        loadavg_before=cell.loadavg_before[0] if cell.loadavg_before else None,
    )
    if cell.status != results.OK:
        return base
    cell_dir = folder.cell_dir(cell.id)
    values: dict[str, object] = {}
    if cell.generator == "wrk":
        parsed = (
            wrk.parse((cell_dir / results.WRK_TXT).read_text(errors="replace"))
            if (cell_dir / results.WRK_TXT).is_file()
            else None
        )
        if parsed is not None:
            values.update(
                requests=parsed.requests,
                failures=parsed.errors,
                rps=parsed.rps,
                p50_ms=parsed.p50_ms,
                p99_ms=parsed.p99_ms,
                duration_s=parsed.seconds,
            )
    else:
        total = locust_csv.aggregated(locust_csv.read_stats(cell_dir / results.STATS_CSV))
        if total is not None:
            values.update(
                requests=total.requests,
                failures=total.failures,
                rps=total.rps,
                p50_ms=total.percentile("50%"),
                p95_ms=total.percentile("95%"),
                p99_ms=total.percentile("99%"),
                max_ms=total.max_ms,
            )
        window = load_window(cell)
        if window is not None:
            values["duration_s"] = window[1] - window[0]
    server = _in_load(resource_series(folder, cell, "server"), cell)
    if server:
        values.update(
            server_cpu_mean=sum(p.cpu_percent for p in server) / len(server),
            server_cpu_peak=max(p.cpu_percent for p in server),
            server_rss_peak=max(p.rss_bytes for p in server),
            server_pss_peak=max((p.pss_bytes for p in server if p.pss_bytes is not None), default=None),
            server_processes=max(p.processes for p in server),
        )
    values["loadgen_cpu_max"] = _loadgen_cpu_max(folder, cell)
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


def timeseries(folder: ResultFolder, cell: Cell) -> list[Point]:
    """Per-second throughput, failures and windowed percentiles of a Locust cell."""
    rows = locust_csv.read_history(folder.cell_dir(cell.id) / results.HISTORY_CSV)
    if not rows:
        return []
    origin = cell.load_started if cell.load_started is not None else float(rows[0].timestamp)
    out: list[Point] = []
    for previous, row in zip(rows, rows[1:], strict=False):
        elapsed = row.timestamp - previous.timestamp
        if elapsed <= 0 or row.timestamp < origin:
            continue
        out.append(
            Point(
                row.timestamp - origin,
                row.users,
                (row.total_requests - previous.total_requests) / elapsed,
                (row.total_failures - previous.total_failures) / elapsed,
                row.percentile("50%"),
                row.percentile("95%"),
                row.percentile("99%"),
            )
        )
    return out


def _known(value: float | None) -> float | None:
    """Locust writes 0 for a windowed percentile it could not compute (no samples in the window)."""
    return value if value else None


def planned_users(step: dict[str, object]) -> set[int]:
    """The user counts of a step profile as stored in study.json."""
    start, increment, last = (int(str(step[key])) for key in ("start_users", "step_users", "max_users"))
    return set(range(start, last + 1, max(1, increment)))


def steps(folder: ResultFolder, cell: Cell, planned: set[int] | None = None) -> list[Step]:
    """Group a step-profile history by user count, one Step per planned user count.

    Rows at user counts outside `planned` (caught mid-spawn) are ignored; in each step the first row (the
    transition) and the rows after the last one that counted new requests (the stop) are dropped. A
    step's throughput is its requests over its seconds; its percentiles are the windowed ones of its
    last row (the runner sets the window just under a step's length)."""
    rows = locust_csv.read_history(folder.cell_dir(cell.id) / results.HISTORY_CSV)
    groups: list[list[locust_csv.HistoryRow]] = []
    for row in rows:
        if row.users <= 0 or (planned is not None and row.users not in planned):
            continue
        if groups and groups[-1][0].users == row.users:
            groups[-1].append(row)
        else:
            groups.append([row])
    out: list[Step] = []
    for group in groups:
        while len(group) > 1 and group[-1].total_requests == group[-2].total_requests:
            group = group[:-1]
        body = group[1:] if len(group) > 2 else group
        if len(body) < 2:
            continue
        seconds = body[-1].timestamp - body[0].timestamp
        if seconds <= 0:
            continue
        last = body[-1]
        out.append(
            Step(
                last.users,
                (last.total_requests - body[0].total_requests) / seconds,
                _known(last.percentile("50%")),
                _known(last.percentile("95%")),
                _known(last.percentile("99%")),
                last.total_failures - body[0].total_failures,
                float(seconds),
            )
        )
    return out


def saturation(found: list[Step], threshold_ms: float) -> Saturation:
    """The best throughput among the steps before p99 first passed `threshold_ms`."""
    best: Step | None = None
    for step in found:
        if step.p99_ms is not None and step.p99_ms > threshold_ms:
            return Saturation(threshold_ms, best.rps if best else None, best.users if best else None, True)
        if best is None or step.rps > best.rps:
            best = step
    return Saturation(threshold_ms, best.rps if best else None, best.users if best else None, False)


def top_failure(folder: ResultFolder, cell: Cell, limit: int = 90) -> str | None:
    """The most frequent failure message of a Locust cell (shortened), or None."""
    path = folder.cell_dir(cell.id) / results.FAILURES_CSV
    if not path.is_file():
        return None
    counts: dict[str, int] = defaultdict(int)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                counts[row["Error"]] += int(row["Occurrences"])
            except (KeyError, ValueError):
                continue
    if not counts:
        return None
    message = " ".join(max(counts, key=lambda k: counts[k]).split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def check(folder: ResultFolder, tolerate_faults: bool = True) -> list[str]:
    """What makes a run unhealthy: failed cells, and failures in cells without injected faults."""
    from lab.studies import FAULT_SCENARIOS

    problems: list[str] = []
    for cell in folder.cells():
        if cell.status == results.FAILED:
            problems.append(f"{cell.id}: failed — {cell.reason}")
        elif cell.status == results.OK:
            found = metrics(folder, cell)
            if tolerate_faults and cell.scenario in FAULT_SCENARIOS:
                continue
            if found.requests is None:
                problems.append(f"{cell.id}: no requests recorded")
            elif found.requests == 0:
                problems.append(f"{cell.id}: served no requests")
            elif found.failures:
                problems.append(f"{cell.id}: {found.failures} of {found.requests} requests failed")
    return problems


def metric_table(folder_path: Path) -> list[CellMetrics]:
    """Metrics of every cell of a folder, in manifest order."""
    folder = ResultFolder(folder_path)
    return [metrics(folder, cell) for cell in folder.cells()]
