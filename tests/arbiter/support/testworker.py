"""A tiny worker class that implements the worker contract (tricorn.core.worker) with plain
sockets and threads, so the arbiter's tests do not depend on the real servers.

It speaks just enough HTTP/1.0 for the tests: one request per connection, ``Connection: close``.
The main thread accepts and notifies the heartbeat; each request runs in its own thread, except
``/hang``, which blocks the main thread on purpose (a stuck worker).

The app is any callable ``app(path) -> bytes``; the worker itself answers:
``/pid`` (its pid), ``/slow?s=N`` (sleep N s), ``/hang`` (block the main loop forever),
``/exit?code=N`` (``os._exit(N)``), ``/segv`` (a real segmentation fault), ``/leak?mb=N`` (keep N
MiB), ``/env?name=X``; ``/hang?abrt=ignore`` also ignores SIGABRT, like a worker stuck in C code,
so only the master's SIGKILL ends it.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import socket
import threading
import time
from typing import Any, cast

from tricorn.core.worker import WorkerContext

_LEAK: list[bytes] = []


class TestWorker:
    def __init__(self, context: WorkerContext) -> None:
        self.ctx = context
        self.alive = True
        self.quick = False
        self.threads: set[threading.Thread] = set()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # --- signals: record and wake
    def _stop(self, quick: bool) -> None:
        self.alive = False
        self.quick = self.quick or quick
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._stop(False))

        def on_quick(*_: Any) -> None:
            self.ctx.hooks.call("worker_int", self.ctx)
            self._stop(True)

        signal.signal(signal.SIGINT, on_quick)
        signal.signal(signal.SIGQUIT, on_quick)
        app = self.ctx.load_app()
        if os.environ.get("TESTWORKER_BOOT_SLEEP"):
            time.sleep(float(os.environ["TESTWORKER_BOOT_SLEEP"]))
        selector = selectors.DefaultSelector()
        for sock in self.ctx.sockets:
            selector.register(sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        heartbeat = self.ctx.heartbeat
        heartbeat.ready()
        interval = self.ctx.notify_interval
        while self.alive:
            heartbeat.notify()
            for key, _ in selector.select(interval):
                if key.fileobj == self._wake_r:
                    continue
                sock = cast(socket.socket, key.fileobj)
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                conn.setblocking(True)
                conn.settimeout(10)
                self._dispatch(conn, app)
                if not self.alive:
                    break
        for sock in self.ctx.sockets:
            selector.unregister(sock)
        deadline = time.monotonic() + self.ctx.graceful_timeout
        while self.threads and not self.quick and time.monotonic() < deadline:
            heartbeat.notify()
            time.sleep(0.02)
        return 0

    def _dispatch(self, conn: socket.socket, app: Any) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
        except OSError:
            conn.close()
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        target = parts[1] if len(parts) > 1 else "/"
        path, _, query = target.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if path == "/hang":  # block the main loop: no heartbeat any more
            if params.get("abrt") == "ignore":
                signal.signal(signal.SIGABRT, signal.SIG_IGN)
            while True:
                time.sleep(3600)
        thread = threading.Thread(target=self._serve, args=(conn, app, path, params), daemon=True)
        self.threads.add(thread)
        thread.start()

    def _serve(self, conn: socket.socket, app: Any, path: str, params: dict[str, str]) -> None:
        heartbeat = self.ctx.heartbeat
        started = time.monotonic()
        heartbeat.request_started()
        status = "200 OK"
        try:
            if path == "/pid":
                body = str(os.getpid()).encode()
            elif path == "/slow":
                time.sleep(float(params.get("s", "1")))
                body = b"slow done"
            elif path == "/exit":
                os._exit(int(params.get("code", "1")))
            elif path == "/segv":
                ctypes.string_at(0)  # reads address 0: SIGSEGV
                body = b"unreachable"
            elif path == "/leak":
                _LEAK.append(b"x" * (int(params.get("mb", "10")) << 20))
                body = str(sum(len(b) for b in _LEAK) >> 20).encode()
            elif path == "/env":
                body = os.environ.get(params.get("name", ""), "").encode()
            else:
                body = app(path)
        except Exception as exc:  # noqa: BLE001
            status, body = "500 Internal Server Error", repr(exc).encode()
        try:
            conn.sendall(
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nX-Pid: {os.getpid()}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )
        except OSError:
            pass
        finally:
            conn.close()
            heartbeat.request_finished(time.monotonic() - started)
            self.threads.discard(threading.current_thread())
