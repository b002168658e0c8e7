"""Read Locust's CSV output (`--csv PREFIX --csv-full-history`) into typed rows.

`PREFIX_stats.csv` has one row per request name plus "Aggregated" (whole-run numbers);
`PREFIX_stats_history.csv` appends one row per second per name (with --csv-full-history) holding the
user count, *cumulative* request and failure counts and *current* (windowed) percentiles. Locust
writes "N/A" for a percentile it cannot compute yet; that becomes None here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

AGGREGATED = "Aggregated"
PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%")


def _num(value: str | None) -> float | None:
    if value is None or value in ("", "N/A"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class StatsRow:
    """One row of PREFIX_stats.csv (times in ms)."""

    type: str
    name: str
    requests: int
    failures: int
    median_ms: float | None
    average_ms: float | None
    min_ms: float | None
    max_ms: float | None
    average_size: float | None
    rps: float
    failures_per_s: float
    percentiles: dict[str, float | None]

    def percentile(self, label: str) -> float | None:
        return self.percentiles.get(label)


@dataclass(frozen=True)
class HistoryRow:
    """One row of PREFIX_stats_history.csv."""

    timestamp: int
    users: int
    type: str
    name: str
    total_requests: int
    total_failures: int
    percentiles: dict[str, float | None]

    def percentile(self, label: str) -> float | None:
        return self.percentiles.get(label)


def read_stats(path: Path) -> list[StatsRow]:
    """All rows of a stats CSV (empty when the file is missing)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [
            StatsRow(
                type=row.get("Type", ""),
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                median_ms=_num(row.get("Median Response Time")),
                average_ms=_num(row.get("Average Response Time")),
                min_ms=_num(row.get("Min Response Time")),
                max_ms=_num(row.get("Max Response Time")),
                average_size=_num(row.get("Average Content Size")),
                rps=_num(row.get("Requests/s")) or 0.0,
                failures_per_s=_num(row.get("Failures/s")) or 0.0,
                percentiles={label: _num(row.get(label)) for label in PERCENTILES if label in row},
            )
            for row in csv.DictReader(handle)
        ]


def aggregated(rows: list[StatsRow]) -> StatsRow | None:
    """The "Aggregated" row."""
    for row in rows:
        if row.name == AGGREGATED:
            return row
    return None


def read_history(path: Path, name: str = AGGREGATED) -> list[HistoryRow]:
    """The history rows of one request name (default: the aggregate), in time order."""
    if not path.is_file():
        return []
    out: list[HistoryRow] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") != name:
                continue
            try:
                out.append(
                    HistoryRow(
                        timestamp=int(row["Timestamp"]),
                        users=int(row["User Count"]),
                        type=row.get("Type", ""),
                        name=row["Name"],
                        total_requests=int(row["Total Request Count"]),
                        total_failures=int(row["Total Failure Count"]),
                        percentiles={label: _num(row.get(label)) for label in PERCENTILES if label in row},
                    )
                )
            except (KeyError, ValueError):
                continue  # a row cut short when the run was killed
    out.sort(key=lambda r: r.timestamp)
    return out


def history_names(path: Path) -> list[str]:
    """Request names that appear in a history CSV (aggregate excluded), in first-seen order."""
    if not path.is_file():
        return []
    seen: dict[str, None] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            name = row.get("Name", "")
            if name and name != AGGREGATED:
                seen.setdefault(name, None)
    return list(seen)
