"""Run one deployment: start it on loopback, wait until it is ready, warm it up, stop it.

Lifecycle: `start()` launches the argv in its own session (process group) with stdout and stderr in a
log file; `wait_ready()` polls the readiness probe until it answers 2xx, failing fast when the process
exits and at the deadline otherwise; `warm_up()` sends a bounded number of requests; `stop()` sends
SIGTERM to the server, waits `stop_timeout_s`, then SIGKILLs the whole group, so no worker outlives it.
Failures raise `ServerFailed` with the reason and the tail of the server's log: the runner turns them
into a "failed" cell.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.deployments import Deployment
from lab.net import ensure_loopback, free_port, http_get

ADDRESS_IN_LOG = re.compile(r"https?://(127(?:\.\d{1,3}){3}|\[::1\]|localhost):(\d{1,5})")
LOG_TAIL_BYTES = 2000


class ServerFailed(Exception):
    """The server did not start, did not become ready, or died."""

    def __init__(self, reason: str, log_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


@dataclass(frozen=True)
class WarmupResult:
    """What the warm-up sent and how it went."""

    requests: int
    failures: int
    seconds: float


def log_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    """The last `limit` bytes of a log file, decoded leniently."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


class RunningServer:
    """A started deployment process."""

    def __init__(
        self,
        deployment: Deployment,
        argv: list[str],
        env: dict[str, str],
        host: str,
        port: int,
        process: subprocess.Popen[bytes],
        log_path: Path,
    ) -> None:
        self.deployment = deployment
        self.argv = argv
        self.env = env
        self.host = host
        self.port = port
        self.process = process
        self.log_path = log_path
        self.started_at = time.time()
        self.ready_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def _discover_port(self) -> int | None:
        for match in ADDRESS_IN_LOG.finditer(log_tail(self.log_path, 64 * 1024)):
            port = int(match.group(2))
            if port:
                return port
        return None

    def wait_ready(self) -> float:
        """Block until the readiness probe passes; return seconds from start to ready."""
        readiness = self.deployment.readiness
        deadline = time.monotonic() + readiness.timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerFailed(
                    f"server exited with code {code} before it was ready", log_tail(self.log_path)
                )
            if self.port == 0:
                self.port = self._discover_port() or 0
            if self.port and http_get(self.host, self.port, readiness.path, timeout=1.0).ok:
                self.ready_at = time.time()
                return self.ready_at - self.started_at
            time.sleep(readiness.interval_s)
        raise ServerFailed(
            f"not ready within {readiness.timeout_s:.0f} s "
            f"(GET {readiness.path} on port {self.port or 'unknown'})",
            log_tail(self.log_path),
        )

    def warm_up(self, path: str) -> WarmupResult:
        """`warmup.requests` GETs of `path` over `warmup.connections` threads, bounded by its timeout."""
        warmup = self.deployment.warmup
        deadline = time.monotonic() + warmup.timeout_s
        lock = threading.Lock()
        counts = {"left": warmup.requests, "sent": 0, "failed": 0}

        def worker() -> None:
            while time.monotonic() < deadline:
                with lock:
                    if counts["left"] <= 0:
                        return
                    counts["left"] -= 1
                ok = http_get(self.host, self.port, path, timeout=max(0.1, deadline - time.monotonic())).ok
                with lock:
                    counts["sent"] += 1
                    counts["failed"] += 0 if ok else 1

        started = time.monotonic()
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, warmup.connections))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        time.sleep(warmup.settle_s)
        return WarmupResult(counts["sent"], counts["failed"], time.monotonic() - started)

    def signal(self, signum: int) -> None:
        """Send a signal to the server's main process (if still running)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL the process group; return the exit code (None if killed)."""
        code = self.process.poll()
        if code is None:
            try:
                os.kill(self.process.pid, signal.SIGTERM)
                code = self.process.wait(timeout=self.deployment.stop_timeout_s)
            except subprocess.TimeoutExpired:
                code = None
            except ProcessLookupError:
                code = self.process.poll()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group is this server's own session
        except (ProcessLookupError, PermissionError):
            pass
        if code is None:
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        return code


def start(
    deployment: Deployment,
    *,
    host: str,
    python: str,
    threads: int,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    program: str | None = None,
) -> RunningServer:
    """Launch `deployment` (not yet ready: call `wait_ready`)."""
    ensure_loopback(host)
    port = 0 if deployment.readiness.port_discovery == "log" else free_port(host)
    argv = deployment.command(host, port, python, threads)
    if program is not None:
        argv[0] = program
    full_env = {**os.environ, **env, **deployment.env}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        try:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerFailed(f"could not start {argv[0]!r}: {exc}") from exc
    return RunningServer(deployment, argv, {**env, **deployment.env}, host, port, process, log_path)
