"""Helpers for the arbiter tests: run ``python -m tricorn.arbiter`` as a real process on
127.0.0.1:0, read its log file, talk plain HTTP/1.0 to it, send it real signals.

Every wait is bounded in time; every load loop in the tests is bounded in count and time.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT = HERE / "support"
TEST_WORKER = "testworker:TestWorker"


def http_get(port: int, path: str, timeout: float = 5.0, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """One GET over a fresh connection; returns (status, body). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        raise OSError(f"not an HTTP response: {bytes(data[:80])!r}")
    return int(head.split()[1]), body


def children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
        time.sleep(interval)


class Master:
    """A running ``tricorn`` master."""

    def __init__(self, args: list[str], tmp: Path, env: dict[str, str] | None = None,
                 app: str | None = "apps:app", worker_class: str | None = TEST_WORKER) -> None:
        self.log_path = tmp / f"tricorn-{time.monotonic_ns()}.log"
        self.log_path.touch()
        full = [sys.executable, "-m", "tricorn.arbiter", "--error-logfile", str(self.log_path)]
        if worker_class is not None:
            full += ["-k", worker_class]
        full += args
        if app is not None:
            full.append(app)
        environ = dict(os.environ)
        environ["PYTHONPATH"] = os.pathsep.join(
            [str(SUPPORT), *filter(None, [environ.get("PYTHONPATH")])]
        )
        for key in list(environ):
            if key.startswith("TRICORN_"):
                del environ[key]
        environ.update(env or {})
        self.proc = subprocess.Popen(full, cwd=str(SUPPORT), env=environ,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self._port: int | None = None

    # --- log
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> list[re.Match[str]]:
        regex = re.compile(pattern)

        def found() -> list[re.Match[str]] | None:
            matches = list(regex.finditer(self.log()))
            return matches if len(matches) >= count else None

        try:
            return wait_for(found, timeout, interval=0.02, what=f"log {pattern!r} x{count}")
        except AssertionError:
            raise AssertionError(f"log {pattern!r} x{count} not seen; log:\n{self.log()[-4000:]}"
                                 f"\nstderr: {self._stderr()}") from None

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    @property
    def port(self) -> int:
        if self._port is None:
            match = self.wait_log(r"Listening at: https?://127\.0\.0\.1:(\d+)")[0]
            self._port = int(match.group(1))
        return self._port

    def ready_count(self) -> int:
        return len(re.findall(r"ready in \d+ ms", self.log()))

    def wait_ready(self, count: int = 1, timeout: float = 15.0) -> None:
        self.wait_log(r"ready in \d+ ms", timeout=timeout, count=count)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return http_get(self.port, path, timeout)

    def workers(self) -> set[int]:
        return children(self.pid)

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"master did not exit; log:\n{self.log()[-3000:]}") from None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            workers = self.workers()
            self.send(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode
