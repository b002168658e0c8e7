"""The result-folder schema and the numbers read back from it (stored real run in data/smoke)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lab import analysis, locust_csv, results, wrk
from lab.results import Cell, ResultFolder, validate


def test_the_stored_folder_follows_the_schema(smoke_folder: Path) -> None:
    assert validate(smoke_folder) == []
    folder = ResultFolder(smoke_folder)
    manifest = folder.manifest()
    assert manifest["schema"] == results.SCHEMA and manifest["status"] == "complete"
    assert manifest["study"] == "smoke" and manifest["quick"] is True
    cells = folder.cells()
    assert [c.id for c in cells] == manifest["cells"] and len(cells) == 28
    statuses = {c.status for c in cells}
    assert statuses == {results.OK, results.NOT_APPLICABLE}
    env = folder.environment()
    assert env["cpu_count"] >= 1 and env["git"]["revision"] and env["python"]["version"].startswith("3.")
    assert "locust==" in (smoke_folder / results.PIP_FREEZE).read_text()
    study = folder.study()
    assert {d["name"] for d in study["deployments"]} == {
        "tricorn-sync-w2",
        "tricorn-hybrid-w2",
        "uvicorn",
        "wsgiref",
    }


def test_every_ran_cell_records_its_exact_commands(smoke_folder: Path) -> None:
    for cell in ResultFolder(smoke_folder).cells():
        if cell.status != results.OK:
            assert cell.reason
            continue
        assert cell.server["argv"] and cell.server["port"] > 0 and cell.seed == 1
        assert cell.load_started is not None and cell.load_finished is not None
        assert cell.load_finished > cell.load_started
        if cell.generator == "locust":
            assert (
                cell.load["master_argv"][1:3] == ["-m", "locust"]
                and "--csv-full-history" in cell.load["master_argv"]
            )
            assert len(cell.load["worker_argvs"]) == 1 and "--worker" in cell.load["worker_argvs"][0]
            assert "127.0.0.1" in cell.load["master_argv"][cell.load["master_argv"].index("--host") + 1]
        else:
            assert cell.load["argv"][0].endswith("wrk")


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: (p / "manifest.json").unlink(), "missing manifest.json"),
        (
            lambda p: (p / "cells" / "uvicorn__hello__steady" / "locust_stats.csv").unlink(),
            "cell uvicorn__hello__steady: missing locust_stats.csv",
        ),
        (
            lambda p: (p / "cells" / "wsgiref__hello__wrk" / "wrk.txt").unlink(),
            "cell wsgiref__hello__wrk: missing wrk.txt",
        ),
        (
            lambda p: (p / "cells" / "uvicorn__hello__steady" / "resources.csv").write_text("a,b\n"),
            "cell uvicorn__hello__steady: resources.csv has an unexpected header",
        ),
        (
            lambda p: shutil.rmtree(p / "cells" / "uvicorn__ramp__steady"),
            "cell uvicorn__ramp__steady: missing cell.json",
        ),
    ],
)
def test_damage_is_reported(smoke_copy: Path, damage: object, expected: str) -> None:
    damage(smoke_copy)  # type: ignore[operator]
    assert expected in validate(smoke_copy)


def test_bad_status_and_missing_reason_are_reported(smoke_copy: Path) -> None:
    path = smoke_copy / "cells" / "wsgiref__websocket__steady" / "cell.json"
    data = json.loads(path.read_text())
    data["reason"] = None
    path.write_text(json.dumps(data))
    path2 = smoke_copy / "cells" / "uvicorn__hello__kill9" / "cell.json"
    data2 = json.loads(path2.read_text())
    data2["status"] = "exploded"
    path2.write_text(json.dumps(data2))
    problems = validate(smoke_copy)
    assert "cell wsgiref__websocket__steady: status not-applicable without a reason" in problems
    assert "cell uvicorn__hello__kill9: unknown status 'exploded'" in problems


def test_cell_json_round_trip() -> None:
    cell = Cell("d", "w", "steady", "locust", status=results.FAILED, reason="r", server={"argv": ["x"]})
    again = Cell.from_json(json.loads(json.dumps(cell.to_json())))
    assert again == cell and again.id == "d__w__steady"


def test_metrics_match_the_locust_csv(smoke_folder: Path) -> None:
    folder = ResultFolder(smoke_folder)
    cell = next(c for c in folder.cells() if c.id == "uvicorn__hello__steady")
    total = locust_csv.aggregated(locust_csv.read_stats(folder.cell_dir(cell.id) / results.STATS_CSV))
    assert total is not None and total.requests == 10556 and total.failures == 0
    m = analysis.metrics(folder, cell)
    assert (m.requests, m.failures, m.p99_ms, m.p50_ms) == (10556, 0, 14.0, 2.0)
    assert m.rps == pytest.approx(1742.77, abs=0.01) and m.failure_pct == 0.0
    assert m.server_cpu_mean is not None and 0 < m.server_cpu_mean < 200
    assert m.server_rss_peak and m.server_rss_peak > 10 * 2**20 and m.server_processes == 1
    assert m.loadgen_cpu_max is not None and not m.loadgen_bound


def test_timeseries_counts_add_up(smoke_folder: Path) -> None:
    folder = ResultFolder(smoke_folder)
    cell = next(c for c in folder.cells() if c.id == "tricorn-sync-w2__hello__steady")
    points = analysis.timeseries(folder, cell)
    assert len(points) >= 5 and all(p.t >= 0 for p in points)
    history = locust_csv.read_history(folder.cell_dir(cell.id) / results.HISTORY_CSV)
    counted = sum(p.rps for p in points)  # one-second points: their sum is the requests after the origin
    first = max((r.total_requests for r in history if r.timestamp <= cell.load_started), default=0)
    assert counted == pytest.approx(history[-1].total_requests - first)


def test_failures_are_counted(smoke_folder: Path) -> None:
    folder = ResultFolder(smoke_folder)
    cell = next(c for c in folder.cells() if c.id == "tricorn-hybrid-w2__websocket__steady")
    m = analysis.metrics(folder, cell)
    assert m.requests and m.failures == m.requests and m.failure_pct == 100.0
    problems = analysis.check(folder)
    assert problems == [f"tricorn-hybrid-w2__websocket__steady: {m.failures} of {m.requests} requests failed"]


def test_steps_and_saturation(smoke_folder: Path) -> None:
    folder = ResultFolder(smoke_folder)
    cell = next(c for c in folder.cells() if c.id == "uvicorn__ramp__steady")
    planned = analysis.planned_users(folder.study()["study"]["step"])
    assert planned == {2, 6, 10}
    found = analysis.steps(folder, cell, planned)
    assert analysis.steps(folder, cell, {6}) == [found[1]]
    assert [s.users for s in found] == [2, 6, 10]
    assert [round(s.rps, -2) for s in found] == [100, 300, 500]  # 50 req/s per user, as paced
    assert not analysis.saturation(found, 100.0).crossed
    crossed = analysis.saturation(found, 7.5)
    assert crossed.crossed and crossed.users == 2 and crossed.rps == pytest.approx(found[0].rps)
    never = analysis.saturation(found, 1.0)
    assert never.crossed and never.rps is None


WRK_US = """Running 2s test @ http://127.0.0.1:8000/
  1 threads and 64 connections
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  1234 requests in 2.00s, 150.00KB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:    617.00
"""


def test_wrk_output_is_parsed(smoke_folder: Path) -> None:
    parsed = wrk.parse(WRK_US)
    assert parsed is not None
    assert (parsed.requests, parsed.rps, parsed.p50_ms, parsed.p99_ms) == (1234, 617.0, 0.812, 1500.0)
    assert (parsed.socket_errors, parsed.non_2xx, parsed.errors) == (5, 7, 12)
    stored = wrk.parse((smoke_folder / "cells" / "tricorn-sync-w2__hello__wrk" / "wrk.txt").read_text())
    assert stored is not None and stored.requests == 27680 and stored.rps == 4546.89 and stored.errors == 0
    assert wrk.parse("wrk: connection refused") is None
    assert wrk.argv("http://127.0.0.1:1/", 1, 8, 2.2) == [
        "wrk",
        "-t",
        "1",
        "-c",
        "8",
        "-d",
        "2s",
        "--latency",
        "http://127.0.0.1:1/",
    ]
