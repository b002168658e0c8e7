"""Resource sampling from /proc and fault injection, on real processes and sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from lab import procfs
from lab.faults import FaultSchedule, applicable, worker_pids
from lab.sampler import COLUMNS, Sampler, Watch, read_csv, write_csv

BUSY_CHILD = (
    "import os, time\nif os.fork() == 0:\n    x = 0\n    end = time.time() + 20\n"
    "    while time.time() < end: x += 1\n    os._exit(0)\nelse:\n    time.sleep(20)"
)
SLEEPING_WORKERS = (
    "import os, time\nfor _ in range(2):\n    if os.fork() == 0:\n        time.sleep(20)\n"
    "        os._exit(0)\ntime.sleep(20)"
)


def spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def wait_for_children(pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = worker_pids(pid)
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError("children did not appear")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


def test_sampler_sees_a_busy_worker(tmp_path: Path) -> None:
    process = spawn(BUSY_CHILD)
    try:
        child = wait_for_children(process.pid, 1)[0]
        sampler = Sampler(interval_s=0.2)
        sampler.watch(Watch("server", process.pid, "main", tree=True))
        sampler.start()
        time.sleep(1.3)
        sampler.stop()
    finally:
        kill_group(process)
    roles = {(s.pid, s.role) for s in sampler.samples}
    assert (process.pid, "master") in roles and (child, "worker") in roles
    busy = [s.cpu_percent for s in sampler.samples if s.pid == child]
    idle = [s.cpu_percent for s in sampler.samples if s.pid == process.pid]
    assert len(busy) >= 3 and max(busy) > 20.0 and max(idle) < 20.0
    assert all(s.rss_bytes > 0 for s in sampler.samples)
    write_csv(sampler.samples, tmp_path / "resources.csv")
    assert (tmp_path / "resources.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert read_csv(tmp_path / "resources.csv")[0].pid == sampler.samples[0].pid


def test_kill9_kills_one_worker_and_records_it() -> None:
    process = spawn(SLEEPING_WORKERS)
    try:
        workers = wait_for_children(process.pid, 2)
        schedule = FaultSchedule("kill9", process.pid, "127.0.0.1", 1, at_s=0.1, until_s=1.0)
        schedule.start(time.time())
        deadline = time.monotonic() + 5
        while not schedule.events and time.monotonic() < deadline:
            time.sleep(0.02)
        schedule.stop()
        assert schedule.events[0].kind == "kill9" and str(workers[0]) in schedule.events[0].detail
        time.sleep(0.1)
        assert not procfs.alive(workers[0]) and procfs.alive(workers[1]) and procfs.alive(process.pid)
        assert all(e.kind != "respawned" for e in schedule.events)  # nothing respawns here
    finally:
        kill_group(process)


def test_hup_is_delivered(tmp_path: Path) -> None:
    marker = tmp_path / "hup"
    process = spawn(
        f"import signal, time, pathlib\nsignal.signal(signal.SIGHUP, lambda *a: "
        f"pathlib.Path({str(marker)!r}).write_text('hup'))\nprint('', flush=True)\ntime.sleep(20)"
    )
    try:
        time.sleep(0.3)
        schedule = FaultSchedule("hup", process.pid, "127.0.0.1", 1, at_s=0.0, until_s=1.0)
        schedule.start(time.time())
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        schedule.stop()
        assert marker.read_text() == "hup" and schedule.events[0].kind == "hup"
    finally:
        kill_group(process)


def test_slow_clients_hold_connections_and_stop_at_the_deadline() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    received: dict[int, bytes] = {}

    def accept() -> None:
        listener.settimeout(3)
        conns = []
        try:
            while len(conns) < 5:
                conn, _ = listener.accept()
                conns.append(conn)
        except OSError:
            return
        deadline = time.monotonic() + 2
        for conn in conns:
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                received[conn.fileno()] = conn.recv(100)
            except OSError:
                pass
        for conn in conns:
            conn.close()

    server = threading.Thread(target=accept)
    server.start()
    started = time.time()
    schedule = FaultSchedule(
        "slow-clients", 0, "127.0.0.1", port, at_s=0.0, until_s=1.0, count=5, byte_interval_s=0.2
    )
    schedule.start(started)
    server.join(timeout=5)
    time.sleep(1.2)
    schedule.stop()
    listener.close()
    kinds = [e.kind for e in schedule.events]
    assert kinds == ["slow-clients", "slow-clients-end"]
    assert "5 connections" in schedule.events[0].detail
    assert schedule.events[1].time - started < 3
    assert received and all(data and b"GET /health HTTP/1.1".startswith(data) for data in received.values())


def test_fault_applicability() -> None:
    assert applicable("kill9", False, None)
    assert applicable("kill9", True, None) is None
    assert applicable("hup", True, None)
    assert applicable("hup", False, "SIGHUP") is None
    assert applicable("slow-clients", False, None) is None
