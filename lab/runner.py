"""Run a study: resolve its cells, record the environment, start the helper services, run every cell,
and keep the result folder valid at every step (the manifest lists cells as they are written, and its
status says whether the run completed or was interrupted).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import availability, environment, results
from lab.cell import CellContext, run_cell
from lab.deployments import Deployment, catalogue
from lab.progress import Progress
from lab.results import ResultFolder, write_json
from lab.services import Service, ServiceFailed, start_upstream
from lab.studies import Study
from lab.workloads import Workload
from lab.workloads import by_name as workloads_by_name


@dataclass(frozen=True)
class Plan:
    """The resolved cells of a study."""

    study: Study
    deployments: list[Deployment]
    workloads: list[Workload]
    workers_n: int

    def cells(self) -> list[tuple[Deployment, Workload, str]]:
        out: list[tuple[Deployment, Workload, str]] = []
        for deployment in self.deployments:
            for workload in self.workloads:
                for scenario in self.study.scenarios:
                    if scenario == "wrk" and workload.wrk_path is None:
                        continue
                    out.append((deployment, workload, scenario))
        return out

    @property
    def baseline(self) -> str:
        return self.study.baseline.replace("{n}", str(self.workers_n))


def _matches(name: str, patterns: tuple[str, ...] | list[str], workers_n: int) -> bool:
    return any(fnmatch.fnmatchcase(name, p.replace("{n}", str(workers_n))) for p in patterns)


def plan(
    study: Study,
    workers_n: int,
    only_deployments: list[str] | None = None,
    only_workloads: list[str] | None = None,
) -> Plan:
    """Select the study's deployments and workloads (optionally narrowed by fnmatch patterns)."""
    deployments = [d for d in catalogue(workers_n) if _matches(d.name, study.deployments, workers_n)]
    if only_deployments:
        deployments = [d for d in deployments if _matches(d.name, only_deployments, workers_n)]
    index = workloads_by_name()
    unknown = [name for name in study.workloads if name not in index]
    if unknown:
        raise KeyError(f"study {study.name!r} names unknown workloads {unknown}")
    workloads = [index[name] for name in study.workloads]
    if only_workloads:
        workloads = [w for w in workloads if _matches(w.name, only_workloads, workers_n)]
    return Plan(study, deployments, workloads, workers_n)


def _study_record(p: Plan) -> dict[str, Any]:
    return {
        "study": dataclasses.asdict(p.study),
        "workers_n": p.workers_n,
        "deployments": [dataclasses.asdict(d) for d in p.deployments],
        "workloads": [dataclasses.asdict(w) for w in p.workloads],
    }


def prepare_folder(out: Path, p: Plan, seed: int, argv: list[str], repo: Path, python: str) -> ResultFolder:
    """Create the folder with its manifest, study, environment and pip freeze."""
    out.mkdir(parents=True, exist_ok=False)
    folder = ResultFolder(out)
    write_json(out / results.STUDY, _study_record(p))
    write_json(out / results.ENVIRONMENT, environment.collect(repo))
    (out / results.PIP_FREEZE).write_text(environment.pip_freeze(python))
    write_json(
        out / results.MANIFEST,
        {
            "schema": results.SCHEMA,
            "study": p.study.name,
            "quick": p.study.quick_mode,
            "seed": seed,
            "started": time.time(),
            "finished": None,
            "status": "running",
            "cells": [],
            "baseline": p.baseline,
            "host": "127.0.0.1",
            "workers_n": p.workers_n,
            "argv": argv,
            "python": python,
            "services": [],
        },
    )
    return folder


def _update_manifest(folder: ResultFolder, **changes: Any) -> None:
    manifest = folder.manifest()
    manifest.update(changes)
    write_json(folder.path / results.MANIFEST, manifest)


def run(
    p: Plan,
    out: Path,
    progress: Progress,
    *,
    seed: int = 1,
    host: str = "127.0.0.1",
    repo: Path | None = None,
    python: str = sys.executable,
    argv: list[str] | None = None,
) -> ResultFolder:
    """Run every cell of `p` into the new folder `out`."""
    repo = repo or Path(__file__).resolve().parent.parent
    folder = prepare_folder(out, p, seed, argv or sys.argv, repo, python)
    upstream: Service | None = None
    upstream_error: str | None = None
    if any(w.needs_upstream for w in p.workloads):
        try:
            upstream = start_upstream(
                python, repo, host, p.study.upstream_delay_ms, out / results.SERVICES / "upstream.log"
            )
            _update_manifest(folder, services=[upstream.describe()])
        except ServiceFailed as exc:
            upstream_error = str(exc)
    ctx = CellContext(
        folder, p.study, python, repo, host, seed, upstream.url if upstream else None, upstream_error
    )
    found = {d.name: availability.check(d, python) for d in p.deployments}
    cells = p.cells()
    progress.begin(len(cells), f"study {p.study.name}{' (quick)' if p.study.quick_mode else ''} → {out}")
    for name, state in found.items():
        if not state.available:
            progress.note(f"{name}: unavailable — {state.reason}")
    written: list[str] = []
    status = "interrupted"
    try:
        for deployment, workload, scenario in cells:
            progress.cell_started(results.cell_id(deployment.name, workload.name, scenario))
            cell = run_cell(ctx, deployment, found[deployment.name], workload, scenario, progress.live)
            written.append(cell.id)
            _update_manifest(folder, cells=written)
            progress.cell_finished(cell)
        status = "complete"
    finally:
        if upstream is not None:
            upstream.stop()
        _update_manifest(folder, status=status, finished=time.time())
        progress.end()
    return folder
