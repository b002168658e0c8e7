"""Faults injected during load: SIGKILL a worker, SIGHUP the master, slow clients holding connections.

A `FaultSchedule` runs in a thread next to the load: it waits until `at_s` after the load started,
injects its fault once, records what it did as events (unix time, kind, detail), and for slow clients
keeps the connections trickling until the load's end. Slow clients connect only to the server's
loopback address, are at most `count` sockets, send one byte per `byte_interval_s` and stop at the
deadline — bounded in count and time like every load loop in the lab.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab import procfs
from lab.net import ensure_loopback

SLOW_REQUEST = b"GET /health HTTP/1.1\r\nHost: lab\r\nX-Slow-Client: 1\r\n\r\n"


@dataclass
class FaultEvent:
    time: float
    kind: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"time": round(self.time, 3), "kind": self.kind, "detail": self.detail}


def applicable(scenario: str, forks_workers: bool, reload_signal: str | None) -> str | None:
    """None when `scenario` makes sense for a deployment, else why not."""
    if scenario == "kill9" and not forks_workers:
        return "single process: killing it is a crash, not a worker fault"
    if scenario == "hup" and reload_signal is None:
        return "the server has no reload signal"
    return None


def worker_pids(master: int) -> list[int]:
    """The master's direct children, sorted."""
    return sorted(pid for pid, depth in procfs.descendants(master).items() if depth == 1)


@dataclass
class FaultSchedule:
    """One fault scenario against one running server."""

    scenario: str
    server_pid: int
    host: str
    port: int
    at_s: float
    until_s: float
    count: int = 50
    byte_interval_s: float = 0.5
    events: list[FaultEvent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, load_started: float) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(load_started,), name=f"fault-{self.scenario}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def _record(self, kind: str, detail: str) -> None:
        self.events.append(FaultEvent(time.time(), kind, detail))

    def _run(self, load_started: float) -> None:
        if self._stop.wait(max(0.0, load_started + self.at_s - time.time())):
            return
        if self.scenario == "kill9":
            self._kill9()
        elif self.scenario == "hup":
            self._hup()
        elif self.scenario == "slow-clients":
            self._slow_clients(load_started + self.until_s)

    def _kill9(self) -> None:
        workers = worker_pids(self.server_pid)
        if not workers:
            self._record("kill9", "no worker process found")
            return
        victim = workers[0]
        try:
            os.kill(victim, signal.SIGKILL)
            self._record("kill9", f"SIGKILL worker pid {victim} (of {len(workers)})")
        except ProcessLookupError:
            self._record("kill9", f"worker pid {victim} already gone")
        deadline = time.monotonic() + 10.0
        while not self._stop.is_set() and time.monotonic() < deadline:
            now = set(worker_pids(self.server_pid))
            if len(now) >= len(workers) and victim not in now:
                self._record("respawned", f"{len(now)} workers again")
                return
            time.sleep(0.01)

    def _hup(self) -> None:
        try:
            os.kill(self.server_pid, signal.SIGHUP)
            self._record("hup", f"SIGHUP master pid {self.server_pid}")
        except ProcessLookupError:
            self._record("hup", "server already gone")

    def _slow_clients(self, deadline: float) -> None:
        host = ensure_loopback(self.host)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sockets: list[tuple[socket.socket, int]] = []
        for _ in range(self.count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(1.0)
            try:
                sock.connect((host, self.port))
                sockets.append((sock, 0))
            except OSError:
                sock.close()
        self._record("slow-clients", f"{len(sockets)} connections trickling a request head")
        while sockets and not self._stop.is_set() and time.time() < deadline:
            still: list[tuple[socket.socket, int]] = []
            for sock, sent in sockets:
                try:
                    sock.send(SLOW_REQUEST[sent % len(SLOW_REQUEST) :][:1])
                    still.append((sock, sent + 1))
                except OSError:
                    sock.close()
            sockets = still
            self._stop.wait(self.byte_interval_s)
        self._record("slow-clients-end", f"{len(sockets)} still open at the end")
        for sock, _ in sockets:
            sock.close()
