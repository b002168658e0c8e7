"""The worker contract (tricorn.core.worker) as the arbiter uses it: a forked child runs
``cls(context).run()`` on inherited sockets and reports through its heartbeat."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from tricorn.core.settings import REGISTRY
from tricorn.core.worker import EXIT_APP_LOAD_ERROR, WorkerContext, resolve_worker_class
from wsgi_support import HERE


def test_worker_classes_resolve() -> None:
    from tricorn.wsgi.worker import SyncWorker, ThreadWorker

    assert resolve_worker_class("sync") is SyncWorker
    assert resolve_worker_class("sync", threads=4) is ThreadWorker
    assert resolve_worker_class("gthread") is ThreadWorker


class PipeHeartbeat:
    """Writes one letter per call to a pipe: n(otify), r(eady), s(tarted), f(inished)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _put(self, letter: bytes) -> None:
        try:
            os.write(self.fd, letter)
        except OSError:
            pass

    def notify(self) -> None:
        self._put(b"n")

    def ready(self) -> None:
        self._put(b"r")

    def request_started(self) -> None:
        self._put(b"s")

    def request_finished(self, duration: float) -> None:
        self._put(b"f")


def run_child(worker: str, app: str, threads: int = 1) -> tuple[int, int, int]:
    """Fork a worker on a fresh listener; returns (pid, port, heartbeat read fd)."""
    import tricorn.wsgi.settings  # noqa: F401  (registers the wsgi settings)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    r, w = os.pipe()
    cfg = REGISTRY.make("wsgi", {"app": app, "threads": threads, "chdir": str(HERE),
                                 "graceful_timeout": 3})
    pid = os.fork()
    if pid == 0:  # the child: what the arbiter's child does
        code = 3
        try:
            os.close(r)
            os.chdir(HERE)
            import sys
            sys.path.insert(0, str(HERE))
            ctx = WorkerContext(sockets=(listener,), settings=cfg, app_spec=app,
                                heartbeat=PipeHeartbeat(w))
            code = resolve_worker_class(worker, threads=threads)(ctx).run()
        finally:
            os._exit(code)
    listener.close()
    os.close(w)
    return pid, port, r


def read_beats(fd: int, want: bytes, timeout: float = 5.0) -> bytes:
    os.set_blocking(fd, False)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got += os.read(fd, 4096)
        except BlockingIOError:
            pass
        if all(got.count(bytes([c])) >= want.count(bytes([c])) for c in set(want)):
            return got
        time.sleep(0.02)
    return got


@pytest.mark.parametrize("worker,threads", [("sync", 1), ("gthread", 2)])
def test_forked_worker_contract(worker: str, threads: int) -> None:
    pid, port, beats = run_child(worker, "tricorn_test_apps:app", threads)
    try:
        assert b"r" in read_beats(beats, b"r")
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                assert s.recv(1000).startswith(b"HTTP/1.1 200")
        got = read_beats(beats, b"rsssfffn")
        assert got.count(b"s") == 3 and got.count(b"f") == 3 and b"n" in got
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(beats)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_forked_worker_app_load_failure() -> None:
    pid, _, beats = run_child("sync", "no_such_module_here:app")
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == EXIT_APP_LOAD_ERROR
        assert b"r" not in read_beats(beats, b"", timeout=0.1)
    finally:
        os.close(beats)
