"""Helpers for the tricorn-asgi tests: a fake transport, a protocol harness (no sockets), a server
running in a thread (real loopback sockets), a server subprocess (signals, exit codes), raw HTTP
over a socket, and a strict ASGI checker wrapped around test applications."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tricorn.asgi.protocol import HttpProtocol
from tricorn.asgi.settings import REGISTRY
from tricorn.asgi.state import ServerState
from tricorn.asgi.worker import AsgiWorker, StandaloneHeartbeat
from tricorn.core.settings import BindAddress
from tricorn.core.sockets import Listener, listen
from tricorn.core.worker import WorkerContext

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

# --------------------------------------------------------------------------------------------------
# Protocol tests: a transport that records everything, driven by a real (asyncio) event loop.


class FakeTransport(asyncio.Transport):
    """Records writes and flow-control calls (Uvicorn's MockTransport idea)."""

    def __init__(self, peer: Any = ("127.0.0.1", 40000), sock: Any = ("127.0.0.1", 8000),
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading = True
        self.buffer_limits: dict[str, Any] = {}
        self.extra = {"peername": peer, "sockname": sock, **(extra or {})}
        self.protocol: HttpProtocol | None = None

    high_water: int | None = None
    """Like a real transport: call the protocol's pause_writing() above this many bytes."""
    write_paused = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        if self.closed:
            raise AssertionError("write after close")
        self.data += data
        if (self.high_water is not None and len(self.data) > self.high_water
                and not self.write_paused and self.protocol is not None):
            self.write_paused = True
            self.protocol.pause_writing()

    def drain_all(self) -> bytes:
        """The client read everything: resume writing."""
        out = self.take()
        if self.write_paused and self.protocol is not None:
            self.write_paused = False
            self.protocol.resume_writing()
        return out

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                asyncio.get_event_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def pause_reading(self) -> None:
        if not self.reading:
            raise AssertionError("pause_reading twice")
        self.reading = False

    def resume_reading(self) -> None:
        if self.reading:
            raise AssertionError("resume_reading while reading")
        self.reading = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.buffer_limits = {"high": high, "low": low}

    def get_write_buffer_size(self) -> int:
        return 0

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


class Harness:
    """One HttpProtocol on a FakeTransport, with a private event loop."""

    def __init__(self, app: Any, **state_options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.state = ServerState(app, **state_options)
        self.transport = FakeTransport()
        self.proto = self.new_connection(self.transport)

    def new_connection(self, transport: FakeTransport) -> HttpProtocol:
        proto = HttpProtocol(self.state, self.loop)
        transport.protocol = proto
        proto.connection_made(transport)
        return proto

    def feed(self, data: bytes, proto: HttpProtocol | None = None) -> None:
        (proto or self.proto).data_received(data)

    def run(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            self.loop.run_until_complete(asyncio.sleep(0))

    def run_for(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def request(self, data: bytes) -> bytes:
        self.feed(data)
        self.run()
        return self.transport.take()

    def expire(self, proto: HttpProtocol | None = None) -> None:
        """Run the deadline check as if its time had come."""
        proto = proto or self.proto
        if proto.deadline:
            proto.check_deadline(proto.deadline + 0.001)
        self.run()

    def close(self) -> None:
        self.run()
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.run()
        asyncio.set_event_loop(None)
        self.loop.close()


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """(status, headers (lower-case names, last wins), body, rest) of the first response in `raw`.
    Understands Content-Length and chunked bodies; otherwise the body is everything left."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete head in {raw[:200]!r}")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode().lower()] = value.decode().strip()
    if status < 200:
        return status, headers, b"", rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        return status, headers, rest[:n], rest[n:]
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                trailer, _, rest = rest.partition(b"\r\n\r\n") if not rest.startswith(b"\r\n") \
                    else (b"", b"", rest[2:])
                if trailer:
                    for line in trailer.split(b"\r\n"):
                        name, _, value = line.partition(b":")
                        headers["trailer:" + name.decode().lower()] = value.decode().strip()
                return status, headers, bytes(body), rest
            body += rest[:size]
            rest = rest[size + 2:]
    return status, headers, rest, b""


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    while raw:
        status, headers, body, raw = parse_response(raw)
        out.append((status, headers, body))
    return out


# --------------------------------------------------------------------------------------------------
# A strict ASGI checker: wraps an app, validates what the server gives it.


class ASGIViolation(AssertionError):
    pass


def _check(cond: bool, problem: str, violations: list[str]) -> None:
    if not cond:
        violations.append(problem)


def check_http_scope(scope: Any, violations: list[str]) -> None:
    c = lambda cond, p: _check(cond, p, violations)  # noqa: E731
    c(isinstance(scope, dict), "scope is not a dict")
    c(scope.get("type") == "http", "type")
    asgi = scope.get("asgi")
    c(isinstance(asgi, dict) and asgi.get("version") == "3.0"
      and isinstance(asgi.get("spec_version"), str), f"asgi {asgi!r}")
    c(scope.get("http_version") in ("1.0", "1.1", "2"), "http_version")
    method = scope.get("method")
    c(isinstance(method, str) and method == method.upper() and method, "method")
    c(isinstance(scope.get("scheme"), str) and scope["scheme"], "scheme")
    c(isinstance(scope.get("path"), str), "path")
    c(isinstance(scope.get("raw_path"), bytes), "raw_path")
    c(isinstance(scope.get("query_string"), bytes), "query_string")
    c(isinstance(scope.get("root_path"), str), "root_path")
    headers = scope.get("headers")
    c(isinstance(headers, (list, tuple)), "headers type")
    for item in headers or ():
        c(len(item) == 2 and isinstance(item[0], bytes) and isinstance(item[1], bytes)
          and item[0] == item[0].lower(), f"header {item!r}")
    client = scope.get("client")
    c(client is None or (len(client) == 2 and isinstance(client[0], str)
                         and isinstance(client[1], int)), f"client {client!r}")
    server = scope.get("server")
    c(server is None or (len(server) == 2 and isinstance(server[0], str)
                         and (server[1] is None or isinstance(server[1], int))), f"server {server!r}")
    c(isinstance(scope.get("state", {}), dict), "state")
    c(isinstance(scope.get("extensions", {}), dict), "extensions")


def checked(app: Any, violations: list[str]) -> Any:
    """`app` wrapped so that every spec violation by the server lands in `violations`."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        check_http_scope(scope, violations)
        body_done = False
        disconnected = False

        async def checked_receive() -> Any:
            nonlocal body_done, disconnected
            message = await receive()
            mtype = message.get("type")
            if mtype == "http.request":
                _check(not body_done, "http.request after the body was complete", violations)
                _check(not disconnected, "http.request after http.disconnect", violations)
                _check(isinstance(message.get("body", b""), bytes), "body type", violations)
                _check(isinstance(message.get("more_body", False), bool), "more_body", violations)
                if not message.get("more_body", False):
                    body_done = True
            elif mtype == "http.disconnect":
                disconnected = True
            else:
                violations.append(f"unknown receive message {mtype!r}")
            return message

        await app(scope, checked_receive, send)

    return wrapper


# --------------------------------------------------------------------------------------------------
# A server in a thread (real sockets, in-process apps)


class ServerThread:
    """`AsgiWorker` serving `app` on 127.0.0.1:0 in a thread (no signal handling there)."""

    def __init__(self, app: Any, *, ssl_context: Any = None, host: str = "127.0.0.1",
                 **settings: Any) -> None:
        settings.setdefault("loop", "asyncio")
        self.listener: Listener = listen(BindAddress("tcp", host=host, port=0))
        self.cfg = REGISTRY.make("asgi", {"app": "tests:app", **settings})
        self.ready = threading.Event()
        self.context = WorkerContext(
            sockets=(self.listener.sock,), settings=self.cfg, app_spec="tests:app", app=app,
            ppid=0, logs=None, ssl_context=ssl_context,
        )
        self.context.heartbeat = StandaloneHeartbeat(self.ready.set)
        self.worker = AsgiWorker(self.context)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        addr = self.listener.address
        scheme = "https" if ssl_context is not None else "http"
        host_text = f"[{addr.host}]" if ":" in addr.host else addr.host
        self.url = f"{scheme}://{host_text}:{addr.port}"
        self.address = (addr.host, addr.port)

    def _run(self) -> None:
        self.code = self.worker.run()
        self.ready.set()

    def start(self) -> ServerThread:
        self.thread.start()
        if not self.ready.wait(10) or self.worker.server is None or not self.worker.server.started:
            self.thread.join(5)
            self.listener.close()
            raise RuntimeError(f"server did not start (exit code {self.code})")
        return self

    @property
    def state(self) -> ServerState:
        server = self.worker.server
        assert server is not None
        return server.state

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in the server's loop and return its result."""
        server = self.worker.server
        assert server is not None and server._loop is not None
        future: Any = asyncio.run_coroutine_threadsafe(_call(fn), server._loop)
        return future.result(5)

    def stop(self, graceful: bool = True, timeout: float = 15) -> int | None:
        server = self.worker.server
        if server is not None and self.thread.is_alive():
            server.stop_threadsafe(graceful)
        self.thread.join(timeout)
        self.listener.close()
        return self.code


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[ServerThread]:
    server = ServerThread(app, **options).start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# A server subprocess (the real command)


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.log_path = log_path
        host, _, port = url.rpartition("//")[2].rpartition(":")
        self.address = (host.strip("[]"), int(port))

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


_LISTENING = re.compile(r"Listening at: (\S+)")


def start_process(*args: str, tmp_path: Path, env: dict[str, str] | None = None,
                  wait_ready: bool = True, timeout: float = 10) -> ServerProcess:
    """``python -m tricorn.asgi ARGS --port 0`` with the test apps importable; waits until it
    logs its address (or exits)."""
    log_path = tmp_path / f"server-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [PYTHON, "-m", "tricorn.asgi", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=log_file, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=str(HERE),
        )
    server = ServerProcess(proc, "http://127.0.0.1:0", log_path)
    if not wait_ready:
        return server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(server.log)
        if match:
            server.url = match.group(1)
            host, _, port = server.url.rpartition("//")[2].rpartition(":")
            server.address = (host.strip("[]"), int(port))
            return server
        if proc.poll() is not None:
            return server
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{server.log}")


# --------------------------------------------------------------------------------------------------
# Raw HTTP


def connect(address: tuple[str, int], timeout: float = 5) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    return sock


def read_until_close(sock: socket.socket, limit: int = 1 << 22) -> bytes:
    out = bytearray()
    while len(out) < limit:
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not data:
            break
        out += data
    return bytes(out)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response from a keep-alive socket."""
    buf = b""
    while True:
        try:
            status, headers, body, rest = parse_response(buf)
        except (AssertionError, ValueError, IndexError):
            status = -1
        else:
            complete = ("content-length" in headers and len(body) == int(headers["content-length"])) \
                or (headers.get("transfer-encoding") == "chunked" and buf.endswith(b"\r\n\r\n"))
            if complete or status < 200 and status >= 100:
                return status, headers, body
        data = sock.recv(65536)
        if not data:
            if status >= 0:
                return status, headers, body
            raise ConnectionError(f"closed before a complete response: {buf[:300]!r}")
        buf += data
