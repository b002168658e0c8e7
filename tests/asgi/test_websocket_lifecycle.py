"""WebSocket connections when the server stops (close 1001) and when a client stops reading (the
write timeout). Real server processes (signals) or threads, real clients over loopback: the
`websockets` library, and raw sockets for clients that misbehave.

This module is also the application those server processes run (``test_websocket_lifecycle:app``):
it reports what it sees on stderr, which the tests read from the server's log.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from asgi_apps import lifespan

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402


def report(*words: object) -> None:
    print("APP", *words, file=sys.stderr, flush=True)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()  # websocket.connect
    if scope["path"] == "/slow-accept":
        await asyncio.sleep(1.0)
    await send({"type": "websocket.accept"})
    if scope["path"] == "/firehose":
        await firehose(receive, send)
        return
    while True:  # echo
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            report("disconnect", msg["code"])
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


async def firehose(receive: Any, send: Any) -> None:
    """Send 1 MiB messages (4 GiB if nothing stopped it) to a client that does not read."""
    async def watch() -> None:
        msg = await receive()
        report("disconnect", msg.get("code"))

    watcher = asyncio.create_task(watch())
    chunk = os.urandom(1 << 20)
    sent = 0
    try:
        for _ in range(4096):
            await send({"type": "websocket.send", "bytes": chunk})
            sent += 1
            report("sent", sent)
    except OSError as exc:
        report("send failed", type(exc).__name__, "after", sent)
    await asyncio.wait_for(watcher, 5)


def ws_url(url: str, path: str = "/") -> str:
    return url.replace("http", "ws", 1) + path


def run(coro: Any, timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def wait_for_log(proc: Any, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log:
            return True
        time.sleep(0.02)
    return text in proc.log


def lifecycle_server(process: Any, *args: str) -> Any:
    p = process(f"{Path(__file__).stem}:app", "--ws-ping-interval", "0", *args)
    assert p.proc.poll() is None, p.log
    return p


# ------------------------------------------------------------------------ graceful shutdown


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stop_sends_1001_and_app_sees_it(process: Any, signum: int) -> None:
    """SIGTERM and SIGHUP (retire): every open WebSocket gets close 1001, its application a
    websocket.disconnect with 1001, and the process exits once the closing handshakes are done
    (well before the graceful timeout)."""
    p = lifecycle_server(process, "--graceful-timeout", "20", "--ws-ping-timeout", "20")

    async def go() -> tuple[list[int | None], float]:
        conns = [await connect(ws_url(p.url)) for _ in range(3)]
        for i, ws in enumerate(conns):
            await ws.send(f"hello {i}")
            assert await ws.recv() == f"hello {i}"
        t0 = time.monotonic()
        p.signal(signum)
        codes = []
        for ws in conns:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            codes.append(info.value.rcvd.code if info.value.rcvd is not None else None)
            await ws.wait_closed()
        return codes, time.monotonic() - t0

    codes, elapsed = run(go())
    assert codes == [1001, 1001, 1001]
    assert p.wait(15) == 0
    assert elapsed < 5
    assert p.log.count("APP disconnect 1001") == 3, p.log


def test_stop_closes_after_timeout_without_client_close(process: Any) -> None:
    """A client that never answers the close frame: the server closes TCP after
    --ws-ping-timeout, not at the graceful timeout."""
    p = lifecycle_server(process, "--graceful-timeout", "30", "--ws-ping-timeout", "1")
    with socket.create_connection(p.address, timeout=10) as sock:
        sock.sendall(handshake_request())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
        assert data.startswith(b"HTTP/1.1 101")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        rest = data.partition(b"\r\n\r\n")[2]
        while True:  # read the close frame, then the end of the connection; never answer
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
        elapsed = time.monotonic() - t0
    assert rest[:2] == b"\x88\x16" and rest[2:4] == (1001).to_bytes(2, "big")
    assert rest[4:] == b"server shutting down"
    assert 0.8 < elapsed < 10
    assert p.wait(15) == 0
    assert "APP disconnect 1001" in p.log


def test_stop_before_accept_closes_right_after_it(server: Any) -> None:
    """The server stops while the application has not accepted yet: the accept is followed at
    once by close 1001."""
    srv = server(app, ws_ping_interval=0, ws_ping_timeout=2, graceful_timeout=10)

    async def go() -> None:
        async with connect(ws_url(srv.url, "/slow-accept"), open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001

    async def both() -> None:
        task = asyncio.create_task(go())
        await asyncio.sleep(0.3)  # the handshake request is in, the accept 0.7 s away
        srv.worker.server.stop_threadsafe(True)
        await task

    run(both())
    srv.thread.join(10)
    assert srv.code == 0


def test_handshake_while_retiring_gets_503(server: Any) -> None:
    """A retiring server serves the next request of an idle keep-alive connection; a WebSocket
    handshake there is refused with 503 (it would be closed with 1001 at once)."""
    srv = server(app, ws_ping_interval=0, keep_alive=5, graceful_timeout=10)
    with socket.create_connection(srv.address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        srv.worker.server.stop_threadsafe(True, retire=True)
        time.sleep(0.2)
        sock.sendall(handshake_request())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 503"), answer
    srv.thread.join(10)
    assert srv.code == 0


# ---------------------------------------------------------------------------- write timeout


def handshake_request(path: str = "/") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_write_timeout_aborts_a_client_that_does_not_read(process: Any) -> None:
    """The application sends 1 MiB messages as fast as it may to a client that never reads: the
    sends wait (memory stays bounded), and after --timeout-write the connection is aborted, the
    waiting send raises and the application sees websocket.disconnect 1006."""
    p = lifecycle_server(process, "--timeout-write", "1.5", "--no-ws-per-message-deflate")
    baseline = rss_kib(p.proc.pid)
    peak = baseline
    with socket.create_connection(p.address, timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(handshake_request("/firehose"))
        t0 = time.monotonic()
        deadline = t0 + 20
        while time.monotonic() < deadline and "APP disconnect" not in p.log:
            peak = max(peak, rss_kib(p.proc.pid))
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
    log = p.log
    assert "APP disconnect 1006" in log, log[-2000:]
    assert "APP send failed ClientDisconnected" in log, log[-2000:]
    sent = log.count("APP sent ")
    assert sent < 64, f"{sent} MiB accepted while the client read nothing"
    assert 1.4 < elapsed < 10
    assert peak - baseline < 64 * 1024, f"RSS grew by {(peak - baseline) // 1024} MiB"
    # the server is still fine
    with socket.create_connection(p.address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")


def test_write_timeout_spares_a_slow_but_reading_client(server: Any) -> None:
    """A client that reads slowly (but reads) within the timeout keeps its connection."""
    received = []

    async def burst(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        chunk = os.urandom(256 * 1024)
        for _ in range(12):
            await send({"type": "websocket.send", "bytes": chunk})
        await send({"type": "websocket.close", "code": 1000})

    srv = server(burst, timeout_write=1.0, ws_per_message_deflate=False, ws_ping_interval=0)

    async def go() -> None:
        async with connect(ws_url(srv.url), compression=None, max_size=None,
                           max_queue=1) as ws:
            try:
                while True:
                    received.append(len(await ws.recv()))
                    await asyncio.sleep(0.3)  # paused writes of up to 0.3 s: below the timeout
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1000

    run(go())
    assert received == [256 * 1024] * 12
