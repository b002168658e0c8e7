"""The result folder: its layout, its JSON records, and a schema check.

    RESULTS_DIR/
      manifest.json         schema, study, seed, quick, times, status, cell ids in order, lab argv
      study.json            the study definition, the resolved deployments and workloads
      environment.json      Python, kernel, CPU model/count, memory, git revision, tool versions
      pip-freeze.txt        every package of the lab's environment
      services/upstream.log the slow upstream's output (when a workload needed it)
      cells/ID/cell.json    one cell: status, reason, exact commands and env, seed, ports, faults, times
      cells/ID/locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv
      cells/ID/resources.csv  sampler rows (lab.sampler.COLUMNS)
      cells/ID/server.log, locust-*.log, wrk.txt
      report/               written by `python -m lab report` (never read back by it)

A cell ID is `DEPLOYMENT__WORKLOAD__SCENARIO`. Everything a report needs is in this folder; the
folder never refers to anything outside itself except by description (commands, versions).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "tricorn-lab/1"
MANIFEST = "manifest.json"
STUDY = "study.json"
ENVIRONMENT = "environment.json"
PIP_FREEZE = "pip-freeze.txt"
CELLS = "cells"
CELL_JSON = "cell.json"
SERVICES = "services"
REPORT = "report"
LOCUST_PREFIX = "locust"
STATS_CSV = "locust_stats.csv"
HISTORY_CSV = "locust_stats_history.csv"
FAILURES_CSV = "locust_failures.csv"
EXCEPTIONS_CSV = "locust_exceptions.csv"
RESOURCES_CSV = "resources.csv"
SERVER_LOG = "server.log"
WRK_TXT = "wrk.txt"

OK = "ok"
FAILED = "failed"
UNAVAILABLE = "unavailable"
NOT_APPLICABLE = "not-applicable"
STATUSES = (OK, FAILED, UNAVAILABLE, NOT_APPLICABLE)
GENERATORS = ("locust", "wrk")


def cell_id(deployment: str, workload: str, scenario: str) -> str:
    """The folder name of a cell."""
    return f"{deployment}__{workload}__{scenario}"


@dataclass
class Cell:
    """One deployment × workload × scenario: what was run and how it ended."""

    deployment: str
    workload: str
    scenario: str
    generator: str
    status: str = OK
    reason: str | None = None
    seed: int = 0
    started: float | None = None
    finished: float | None = None
    load_started: float | None = None
    load_finished: float | None = None
    loadavg_before: list[float] = field(default_factory=list)
    loadavg_after: list[float] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return cell_id(self.deployment, self.workload, self.scenario)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def write_json(path: Path, data: Any) -> None:
    """Pretty, stable JSON (sorted keys), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class ResultFolder:
    """Read access to a result folder (and the writer's paths)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def cell_dir(self, cell: str) -> Path:
        return self.path / CELLS / cell

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.path / MANIFEST)
        return data

    def study(self) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.path / STUDY)
        return data

    def environment(self) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.path / ENVIRONMENT)
        return data

    def cells(self) -> list[Cell]:
        """The cells in manifest order (cells listed but not written yet are skipped)."""
        out: list[Cell] = []
        for cell in self.manifest().get("cells", []):
            path = self.cell_dir(cell) / CELL_JSON
            if path.is_file():
                out.append(Cell.from_json(read_json(path)))
        return out

    def write_cell(self, cell: Cell) -> None:
        write_json(self.cell_dir(cell.id) / CELL_JSON, cell.to_json())


STATS_HEADER_START = ("Type", "Name", "Request Count", "Failure Count")
HISTORY_HEADER_START = ("Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s")
MANIFEST_KEYS = ("schema", "study", "seed", "quick", "started", "status", "cells")
ENVIRONMENT_KEYS = ("python", "platform", "kernel", "cpu_model", "cpu_count", "git")


def _header(path: Path) -> tuple[str, ...]:
    with open(path, newline="") as handle:
        return tuple(handle.readline().strip().split(","))


def validate(path: Path) -> list[str]:
    """Problems with a result folder ([] when it follows the schema)."""
    from lab.sampler import COLUMNS  # local: keeps this module free of import cycles

    folder = ResultFolder(path)
    problems: list[str] = []
    for name in (MANIFEST, STUDY, ENVIRONMENT, PIP_FREEZE):
        if not (folder.path / name).is_file():
            problems.append(f"missing {name}")
    if problems:
        return problems
    manifest = folder.manifest()
    problems += [f"manifest.json lacks {key!r}" for key in MANIFEST_KEYS if key not in manifest]
    if manifest.get("schema") != SCHEMA:
        problems.append(f"schema is {manifest.get('schema')!r}, expected {SCHEMA!r}")
    environment = folder.environment()
    problems += [f"environment.json lacks {key!r}" for key in ENVIRONMENT_KEYS if key not in environment]
    for cell_name in manifest.get("cells", []):
        cell_path = folder.cell_dir(cell_name) / CELL_JSON
        if not cell_path.is_file():
            problems.append(f"cell {cell_name}: missing {CELL_JSON}")
            continue
        cell = Cell.from_json(read_json(cell_path))
        if cell.id != cell_name:
            problems.append(f"cell {cell_name}: its cell.json describes {cell.id}")
        if cell.status not in STATUSES:
            problems.append(f"cell {cell_name}: unknown status {cell.status!r}")
        if cell.generator not in GENERATORS:
            problems.append(f"cell {cell_name}: unknown generator {cell.generator!r}")
        if cell.status in (FAILED, UNAVAILABLE, NOT_APPLICABLE) and not cell.reason:
            problems.append(f"cell {cell_name}: status {cell.status} without a reason")
        if cell.status != OK:
            continue
        cell_dir = folder.cell_dir(cell_name)
        if not cell.server.get("argv"):
            problems.append(f"cell {cell_name}: no server command recorded")
        if cell.generator == "locust":
            for name, start in ((STATS_CSV, STATS_HEADER_START), (HISTORY_CSV, HISTORY_HEADER_START)):
                if not (cell_dir / name).is_file():
                    problems.append(f"cell {cell_name}: missing {name}")
                elif _header(cell_dir / name)[: len(start)] != start:
                    problems.append(f"cell {cell_name}: {name} is not a Locust CSV")
            if not cell.load.get("master_argv"):
                problems.append(f"cell {cell_name}: no Locust command recorded")
        elif not (cell_dir / WRK_TXT).is_file():
            problems.append(f"cell {cell_name}: missing {WRK_TXT}")
        if not (cell_dir / RESOURCES_CSV).is_file():
            problems.append(f"cell {cell_name}: missing {RESOURCES_CSV}")
        elif _header(cell_dir / RESOURCES_CSV) != COLUMNS:
            problems.append(f"cell {cell_name}: {RESOURCES_CSV} has an unexpected header")
    return problems
