"""Reloads and upgrades under a request loop: SIGHUP (readiness-gated rolling reload, also with
--preload, and with a broken app that must leave the old workers serving) and SIGUSR2 (a new
master inheriting the sockets, then the old one retires). Every loop is bounded in count and time.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from arbiter_harness import alive, http_get, wait_for


class LoadLoop:
    """`threads` clients sending GET /pid back to back, until stopped or bounded out.

    With `keep_alive`, each client reuses one connection (reopened only after a response that
    says ``Connection: close``) and thinks up to `think` seconds between requests, so its
    connection is idle when a worker retires; a request cut off on it is a failure (no retry)."""

    def __init__(self, port: int, threads: int = 2, max_requests: int = 5000,
                 max_seconds: float = 30.0, keep_alive: bool = False, think: float = 0.0) -> None:
        self.port = port
        self.keep_alive = keep_alive
        self.think = think
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[bytes] = set()
        self._stop = threading.Event()
        self._budget = max_requests
        self._deadline = time.monotonic() + max_seconds
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        rng = random.Random()
        try:
            self._loop(conn, rng)
        finally:
            conn.close()

    def _get(self, conn: http.client.HTTPConnection) -> tuple[int, bytes]:
        if not self.keep_alive:
            return http_get(self.port, "/pid", timeout=10)
        try:
            conn.request("GET", "/pid")
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise OSError(f"keep-alive request failed: {exc!r}") from exc

    def _loop(self, conn: http.client.HTTPConnection, rng: random.Random) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if self._budget <= 0:
                    return
                self._budget -= 1
            try:
                status, body = self._get(conn)
            except OSError as exc:
                with self._lock:
                    self.failures.append(repr(exc))
                continue
            with self._lock:
                if status == 200:
                    self.ok += 1
                    self.pids.add(body)
                else:
                    self.failures.append(f"status {status}")
            time.sleep(rng.uniform(0.0, self.think) if self.think else 0.002)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def serving_low_water(log: str) -> int:
    """Replays the master's log: the fewest workers that were ready and not being stopped right
    after any "Stopping worker" line (readiness gating: never below the target)."""
    serving: set[str] = set()
    low = 1 << 30
    for line in log.splitlines():
        if match := re.search(r"Worker \(pid:(\d+)\) ready in", line):
            serving.add(match.group(1))
        elif match := re.search(r"Stopping worker \(pid:(\d+)\)", line):
            serving.discard(match.group(1))
            low = min(low, len(serving))
    return low


def test_hup_rolling_reload_under_load_loses_nothing(tricorn) -> None:
    """reliability.md A10: five HUPs under a request loop: zero failed requests, a request in
    flight across the first HUP completes, each old worker is stopped only once a replacement
    is ready (replayed from the log), and every worker pid changes."""
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    before = master.workers()
    load = LoadLoop(master.port, max_requests=8000, max_seconds=30)
    slow: list[object] = []
    slow_thread = threading.Thread(
        target=lambda: slow.append(http_get(master.port, "/slow?s=1", timeout=10)))
    try:
        slow_thread.start()
        time.sleep(0.3)
        for i in range(5):
            master.send(signal.SIGHUP)
            master.wait_log("Reload complete", count=i + 1, timeout=15)
            time.sleep(0.3)
    finally:
        load.stop()
        slow_thread.join(10)
    print(f"\nHUP x5 under load: {load.ok} requests ok, {len(load.failures)} failed")
    assert load.failures == []
    assert load.ok > 100
    assert slow == [(200, b"slow done")]
    after = master.workers()
    assert len(after) == 2 and not (after & before)
    assert len(load.pids) >= 6  # requests were served by old and new workers
    assert master.log().count("Stopping worker") >= 10
    assert serving_low_water(master.log()) >= 2


def _write_app(directory: Path, body: str) -> None:
    (directory / "hupapp.py").write_text(f"def app(path):\n    return {body!r}.encode()\n")


@pytest.mark.parametrize("preload", [False, True], ids=["import-in-worker", "preload"])
def test_hup_reloads_code_and_keeps_old_workers_when_new_code_is_broken(
    tricorn, tmp_path: Path, preload: bool
) -> None:
    _write_app(tmp_path, "version one")
    args = ["-w", "2", "-b", "127.0.0.1:0", "--chdir", str(tmp_path)]
    master = tricorn(*args, *(["--preload"] if preload else []), app="hupapp:app",
                     env={"PYTHONDONTWRITEBYTECODE": "1"})
    master.wait_ready(2)
    assert master.get("/")[1] == b"version one"

    _write_app(tmp_path, "version two")
    master.send(signal.SIGHUP)
    master.wait_log("Reload complete", timeout=15)
    assert {master.get("/")[1] for _ in range(6)} == {b"version two"}

    serving = master.workers()
    (tmp_path / "hupapp.py").write_text("raise ImportError('broken on purpose')\n")
    load = LoadLoop(master.port, threads=1, max_requests=2000, max_seconds=20)
    try:
        master.send(signal.SIGHUP)
        master.wait_log("Reload failed", timeout=15)
        time.sleep(0.5)
    finally:
        load.stop()
    assert load.failures == []
    assert master.workers() == serving
    assert {master.get("/")[1] for _ in range(4)} == {b"version two"}
    assert master.proc.poll() is None


def listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:`port` (from /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
            inodes.add(fields[9])
    return inodes


def test_usr2_new_master_takes_over_without_failures(tricorn, tmp_path: Path) -> None:
    """reliability.md A12: zero failed requests, and the listening socket is the same one
    (inode) from start to end: it was handed over, never closed and re-bound."""
    pidfile = tmp_path / "tricorn.pid"
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", "-p", str(pidfile))
    master.wait_ready(2)
    assert int(pidfile.read_text()) == master.pid
    inodes = listening_inodes(master.port)
    assert len(inodes) == 1
    load = LoadLoop(master.port)
    new_pid = 0
    try:
        master.send(signal.SIGUSR2)
        master.wait_log(r"Started by master \d+", timeout=15)
        new_pid = int(wait_for(lambda: pidfile.with_name("tricorn.pid.2").exists()
                               and pidfile.with_name("tricorn.pid.2").read_text().strip(), 10,
                               what="pid file .2"))
        master.wait_ready(4, timeout=15)  # the new master's two workers
        old_workers = master.workers() - {new_pid}
        master.send(signal.SIGTERM)
        assert master.wait_exit(15) == 0
        master.wait_log("Master has been promoted", timeout=10)
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(new_pid), 5,
                 what="the pid file to name the new master")
        time.sleep(0.5)
        inodes_after = listening_inodes(master.port)
    finally:
        load.stop()
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)
            wait_for(lambda: not alive(new_pid), 15, what="the new master to exit")
    print(f"\nUSR2 + TERM old under load: {load.ok} ok, {len(load.failures)} failed")
    assert load.failures == []
    assert inodes_after == inodes
    assert not any(alive(pid) for pid in old_workers)
    assert not pidfile.exists()


def test_winch_stops_workers_and_hup_brings_them_back(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    master.send(signal.SIGWINCH)
    wait_for(lambda: not master.workers(), 5, what="no workers")
    master.send(signal.SIGHUP)
    master.wait_log("Reload complete", timeout=15)
    assert len(master.workers()) == 2
    assert master.get("/x")[0] == 200
