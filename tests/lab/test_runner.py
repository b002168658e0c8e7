"""The runner's parts on real processes: deployment lifecycle on 127.0.0.1:0, readiness probe, warm-up,
stop (the whole process group), availability, and unavailable / not-applicable cells.

The tiny real server is the lab's own stdlib deployment (`python -m lab.apps.stdlib_server`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from lab import availability, procfs, results, runner, server, studies
from lab.availability import Availability
from lab.cell import CellContext, run_cell
from lab.deployments import Deployment, Readiness, Warmup, by_name, catalogue, reference
from lab.results import ResultFolder
from lab.workloads import by_name as workloads

WSGIREF = reference()[0]


def tiny(**changes: object) -> Deployment:
    """The stdlib deployment with short timeouts."""
    base = dataclasses.replace(
        WSGIREF,
        readiness=Readiness(timeout_s=15.0),
        warmup=Warmup(requests=40, connections=2, timeout_s=10.0, settle_s=0.0),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def start(deployment: Deployment, tmp_path: Path, repo: Path) -> server.RunningServer:
    return server.start(
        deployment,
        host="127.0.0.1",
        python=sys.executable,
        threads=4,
        log_path=tmp_path / "server.log",
        env={"PYTHONPATH": str(repo)},
        cwd=repo,
    )


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not procfs.alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("discovery", ["log", "assigned"])
def test_lifecycle_ready_warm_stop(discovery: str, tmp_path: Path, repo: Path) -> None:
    deployment = tiny(readiness=Readiness(timeout_s=15.0, port_discovery=discovery))
    running = start(deployment, tmp_path, repo)
    try:
        if discovery == "log":
            assert running.port == 0  # bound to 127.0.0.1:0, the real port comes from its log
        ready_s = running.wait_ready()
        assert 0 < ready_s < 15 and running.port > 0
        assert "--port" in running.argv and running.argv[running.argv.index("--port") + 1] == (
            "0" if discovery == "log" else str(running.port)
        )
        warm = running.warm_up("/json")
        assert (warm.requests, warm.failures) == (40, 0)
    finally:
        code = running.stop()
    assert code in (0, -signal.SIGTERM, None)
    assert gone(running.pid)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path, repo: Path) -> None:
    crash = tiny(argv=("{python}", "-c", "print('boom: no app'); raise SystemExit(3)"))
    running = start(crash, tmp_path, repo)
    with pytest.raises(server.ServerFailed) as failure:
        running.wait_ready()
    running.stop()
    assert "exited with code 3" in failure.value.reason
    assert "boom: no app" in failure.value.log_tail


def test_a_server_that_never_gets_ready_times_out(tmp_path: Path, repo: Path) -> None:
    # http.server answers 404 on /health: it listens, but the probe never passes
    silent = tiny(
        argv=("{python}", "-m", "http.server", "--bind", "{host}", "{port}"),
        readiness=Readiness(timeout_s=1.5),
    )
    running = start(silent, tmp_path, repo)
    started = time.monotonic()
    with pytest.raises(server.ServerFailed) as failure:
        running.wait_ready()
    assert time.monotonic() - started < 5
    running.stop()
    assert "not ready within" in failure.value.reason
    assert gone(running.pid)


def test_stop_kills_the_whole_group(tmp_path: Path, repo: Path) -> None:
    forking = tiny(
        argv=(
            "{python}",
            "-c",
            "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n"
            "else:\n    import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
        ),
        stop_timeout_s=0.5,
    )
    running = start(forking, tmp_path, repo)
    deadline = time.monotonic() + 5
    children: dict[int, int] = {}
    while not children and time.monotonic() < deadline:
        children = procfs.descendants(running.pid)
        time.sleep(0.02)
    assert children, "the test server did not fork"
    assert running.stop() is None  # it ignored SIGTERM, so it was killed
    assert gone(running.pid) and all(gone(pid) for pid in children)


def test_availability(tmp_path: Path) -> None:
    missing = tiny(argv=("tricorn-no-such-command-xyz", "{wsgi_app}"))
    state = availability.check(missing)
    assert not state.available and "not found" in (state.reason or "")
    no_module = tiny(requires_modules=("no_such_module_for_the_lab",))
    state = availability.check(no_module)
    assert not state.available and "no_such_module_for_the_lab" in (state.reason or "")
    assert availability.check(WSGIREF) == Availability(True, sys.executable, None)


def _context(tmp_path: Path, repo: Path) -> CellContext:
    study = studies.get("smoke").quick()
    folder = ResultFolder(tmp_path / "run")
    folder.path.mkdir()
    return CellContext(folder, study, sys.executable, repo, "127.0.0.1", 7, None, "not started in this test")


def test_unavailable_and_not_applicable_cells_are_recorded_not_raised(tmp_path: Path, repo: Path) -> None:
    ctx = _context(tmp_path, repo)
    index = workloads()
    missing = tiny(name="tricorn-missing", argv=("tricorn-no-such-command-xyz", "{wsgi_app}"))
    lines: list[str] = []
    cell = run_cell(ctx, missing, availability.check(missing), index["hello"], "steady", lines.append)
    assert (cell.status, cell.reason) == (
        results.UNAVAILABLE,
        "command 'tricorn-no-such-command-xyz' not found (not installed, or not built yet)",
    )
    assert not cell.server and not lines  # nothing was started
    ok = availability.check(WSGIREF)
    ws = run_cell(ctx, WSGIREF, ok, index["websocket"], "steady", lines.append)
    assert ws.status == results.NOT_APPLICABLE and "WebSocket" in (ws.reason or "")
    kill = run_cell(ctx, WSGIREF, ok, index["hello"], "kill9", lines.append)
    assert kill.status == results.NOT_APPLICABLE and "single process" in (kill.reason or "")
    io = run_cell(ctx, WSGIREF, ok, index["io"], "steady", lines.append)
    assert io.status == results.FAILED and "upstream" in (io.reason or "")
    for written in (cell, ws, kill, io):
        stored = results.Cell.from_json(results.read_json(ctx.folder.cell_dir(written.id) / "cell.json"))
        assert stored.status == written.status and stored.reason == written.reason


def test_a_failing_server_becomes_a_failed_cell(tmp_path: Path, repo: Path) -> None:
    ctx = _context(tmp_path, repo)
    crash = tiny(name="crashing", argv=("{python}", "-c", "raise SystemExit(4)"))
    cell = run_cell(ctx, crash, availability.check(crash), workloads()["hello"], "steady", lambda _: None)
    assert cell.status == results.FAILED and "exited with code 4" in (cell.reason or "")
    assert cell.server["argv"][0] == sys.executable and cell.server["exit_code"] == 4
    assert (ctx.folder.cell_dir(cell.id) / "server.log").is_file()


def test_plan_selects_by_pattern_with_n() -> None:
    plan = runner.plan(studies.get("saturation"), 3)
    names = [d.name for d in plan.deployments]
    assert "tricorn-sync-w3" in names and "tricorn-sync-w1" not in names and "gunicorn-gthread-w3" in names
    narrowed = runner.plan(studies.get("compare"), 2, ["tricorn-hybrid-*", "wsgiref"], ["hello", "web*"])
    assert [d.name for d in narrowed.deployments] == ["tricorn-hybrid-w1", "tricorn-hybrid-w2", "wsgiref"]
    assert [w.name for w in narrowed.workloads] == ["hello", "websocket"]
    cells = narrowed.cells()  # wrk cells only for workloads that have a wrk path
    assert ("hello", "wrk") in {(w.name, s) for _, w, s in cells}
    assert ("websocket", "wrk") not in {(w.name, s) for _, w, s in cells}
    assert narrowed.baseline == "gunicorn-uvicorn-w2"


def test_catalogue_is_consistent() -> None:
    for n in (1, 2, 4):
        index = by_name(catalogue(n))
        for family in ("tricorn", "peer", "reference"):
            assert any(d.family == family for d in index.values())
        for d in index.values():
            argv = d.command("127.0.0.1", 8123, sys.executable, 8)
            assert "8123" in " ".join(argv) and not any("{" in part for part in argv)
            assert d.interface in ("wsgi", "asgi") and d.model in ("sync", "threaded", "async", "hybrid")
            assert not d.websocket or d.interface == "asgi"
    assert {
        "tricorn-sync-w1",
        "tricorn-sync-w4",
        "tricorn-gthread-w4",
        "tricorn-hybrid-w4",
        "tricorn-asgi",
    } <= set(by_name(catalogue(4)))


def test_quick_is_seconds_per_cell() -> None:
    for study in studies.STUDIES.values():
        quick = study.quick()
        assert quick.quick_mode and quick.duration_s <= 6 and quick.step.duration_s <= 10


def test_process_facts_from_proc() -> None:
    stat = procfs.read_stat(os.getpid())
    assert stat is not None and stat.pid == os.getpid() and stat.rss_bytes > 0
    assert procfs.read_stat(2**22 + 12345) is None
