"""The server over real loopback sockets (a server thread per test): frameworks behind a strict ASGI
checker, streaming both ways, disconnects, backpressure, pipelining, deadlines, limits, pathsend,
TLS, IPv6, both event loops."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_apps import app as routes
from asgi_support import checked, connect, read_response, read_until_close, responses

try:
    import uvloop  # noqa: F401

    HAVE_UVLOOP = True
except ImportError:
    HAVE_UVLOOP = False

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    not HAVE_UVLOOP, reason="uvloop not installed"))]


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_hello_on_both_loops(server: Any, loop_name: str) -> None:
    violations: list[str] = []
    srv = server(checked(routes, violations), loop=loop_name)
    with httpx.Client(base_url=srv.url) as client:
        for _ in range(3):
            r = client.get("/")
            assert r.status_code == 200 and r.text == "hello"
        r = client.post("/echo", content=b"x" * 100_000)
        assert r.content == b"x" * 100_000
        assert client.get("/stream?n=5&size=10").content == b"x" * 50
    assert violations == []


def _starlette_app(events: list[str]) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["id"], "q": request.query_params.get("q"),
                             "client": request.client.host if request.client else None,
                             "root": request.scope["root_path"], "url": str(request.url)})

    async def upload(request: Request) -> JSONResponse:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return JSONResponse({"size": size})

    async def stream(request: Request) -> StreamingResponse:
        async def gen() -> Any:
            for i in range(5):
                yield f"part{i}\n"
                await asyncio.sleep(0)
        return StreamingResponse(gen(), media_type="text/plain")

    async def background(request: Request) -> PlainTextResponse:
        return PlainTextResponse("queued", background=BackgroundTask(events.append, "ran"))

    return Starlette(routes=[
        Route("/", home), Route("/items/{id}", item), Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream), Route("/bg", background),
    ])


def test_starlette(server: Any, loop_name: str) -> None:
    violations: list[str] = []
    events: list[str] = []
    srv = server(checked(_starlette_app(events), violations), loop=loop_name, root_path="/api")
    with httpx.Client(base_url=srv.url) as client:
        assert client.get("/").text == "home"
        data = client.get("/items/7?q=x").json()
        assert data["id"] == "7" and data["q"] == "x" and data["root"] == "/api"
        assert data["url"].endswith("/api/items/7?q=x")

        def gen() -> Any:
            for _ in range(50):
                yield b"y" * 10_000

        assert client.post("/upload", content=gen()).json() == {"size": 500_000}
        r = client.get("/stream")
        assert r.text == "".join(f"part{i}\n" for i in range(5))
        assert r.headers["transfer-encoding"] == "chunked"
        assert client.get("/bg").text == "queued"
        assert client.head("/").headers["content-length"] == "4"
    deadline = time.monotonic() + 2
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == ["ran"] and violations == []


def test_fastapi(server: Any) -> None:
    from asgi_fastapi_app import api

    violations: list[str] = []
    srv = server(checked(api, violations), loop="uvloop" if HAVE_UVLOOP else "asyncio")
    with httpx.Client(base_url=srv.url) as client:
        assert client.post("/items", json={"name": "a", "price": 2.5}).json() == {
            "name": "a", "total": 5.0}
        assert client.post("/items", json={"name": "a"}).status_code == 422
        assert client.get("/sync").json() == {"ok": "yes"}
        assert client.get("/openapi.json").status_code == 200
    assert violations == []


def test_client_disconnect_is_seen_by_the_app(server: Any) -> None:
    seen: list[Any] = []
    started = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
                await asyncio.sleep(0.005)
        except OSError as exc:
            seen.append(type(exc).__name__)
        seen.append(await receive())

    srv = server(app)
    sock = connect(srv.address)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert started.wait(5)
    sock.recv(1000)
    sock.close()
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == ["ClientDisconnected", {"type": "http.disconnect"}]
    assert srv.call(lambda: len(srv.state.tasks)) == 0


def test_a_client_that_never_reads_cannot_grow_server_memory(server: Any, loop_name: str) -> None:
    sent = [0]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"z" * 65536
        try:
            while sent[0] < 1 << 30:  # 1 GiB offered
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent[0] += len(chunk)
        except OSError:
            pass

    srv = server(app, loop=loop_name, write_buffer_size=65536, timeout_write=30)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(srv.address)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    first = sent[0]
    time.sleep(0.5)
    assert sent[0] == first  # the app is waiting: nothing more was produced
    # Kernel socket buffers (both ends) plus the transport's high-water mark: a few MB at most.
    assert first < 16 * 1024 * 1024
    buffered = srv.call(lambda: [p.transport.get_write_buffer_size() for p in srv.state.connections])
    assert max(buffered) <= 2 * 65536 + 65536
    sock.close()


def test_pipelining_over_a_socket(server: Any) -> None:
    srv = server(routes)
    sock = connect(srv.address)
    sock.sendall(b"GET /slow?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = responses(read_until_close(sock))
    assert [(s, b) for s, _, b in got] == [(200, b"slept"), (200, b"abc"), (200, b"hello")]
    assert got[2][1]["connection"] == "close"


def test_header_read_deadline_closes_a_slow_client(server: Any) -> None:
    srv = server(routes, timeout_header_read=0.3)
    silent = connect(srv.address)
    dribble = connect(srv.address)
    start = time.monotonic()
    dribble.sendall(b"GET / HTTP/1.1\r\n")
    time.sleep(0.1)
    dribble.sendall(b"X-A: 1\r\n")  # progress does not extend the deadline
    assert read_until_close(silent) == b""
    out = read_until_close(dribble)
    elapsed = time.monotonic() - start
    assert out.startswith(b"HTTP/1.1 408 ") and 0.25 < elapsed < 2.0
    with httpx.Client(base_url=srv.url) as client:  # others are still served
        assert client.get("/").text == "hello"


def test_keep_alive_timeout(server: Any) -> None:
    srv = server(routes, keep_alive=0.3)
    sock = connect(srv.address)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(sock)[0] == 200
    start = time.monotonic()
    assert read_until_close(sock) == b""
    assert 0.2 < time.monotonic() - start < 1.5


def test_limit_concurrency_over_sockets(server: Any) -> None:
    srv = server(routes, limit_concurrency=2)
    busy = [connect(srv.address) for _ in range(2)]
    for sock in busy:
        sock.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    extra = connect(srv.address)
    extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_until_close(extra).startswith(b"HTTP/1.1 503 ")
    for sock in busy:
        assert read_response(sock)[2] == b"slept"


def test_request_limits_over_sockets(server: Any) -> None:
    srv = server(routes, limit_request_line=100, limit_request_fields=5,
                 limit_request_field_size=200, limit_request_body=1000)
    cases = [
        (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 6 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 300 + b"\r\n\r\n", 431),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413),
    ]
    for raw, status in cases:
        sock = connect(srv.address)
        sock.sendall(raw)
        assert read_until_close(sock).startswith(b"HTTP/1.1 %d " % status), raw[:40]


def test_pathsend_zero_copy(server: Any, loop_name: str, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.bin"
    payload = bytes(range(256)) * 8192  # 2 MiB
    path.write_bytes(payload)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.pathsend", "path": str(path)})

    calls = [0]
    real_sendfile = os.sendfile

    def counting_sendfile(*args: Any) -> int:
        calls[0] += 1
        return real_sendfile(*args)

    monkeypatch.setattr(os, "sendfile", counting_sendfile)
    srv = server(app, loop=loop_name)
    with httpx.Client(base_url=srv.url) as client:
        for _ in range(2):  # keep-alive continues after a file
            r = client.get("/")
            assert r.headers["content-length"] == str(len(payload)) and r.content == payload
        assert client.head("/").headers["content-length"] == str(len(payload))
    # a slow reader: the sender waits for writability, then finishes
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect(srv.address)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(0.3)
    data = read_until_close(sock, limit=1 << 23)
    assert data.endswith(payload)
    assert calls[0] >= 3  # zero copy: os.sendfile, not reads and writes
    # no stale writer registration: the idle server burns no CPU
    before = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - before < 0.05


def test_ipv6_loopback(server: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = server(routes, host="::1")
    except OSError:
        pytest.skip("::1 not available")
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append((scope["client"][0], scope["server"][0]))
        await routes(scope, receive, send)

    srv.state.app = app
    with httpx.Client(base_url=srv.url) as client:
        assert client.get("/").text == "hello"
    assert seen == [("::1", "::1")]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def test_tls_and_the_tls_extension(server: Any, certificate: tuple[str, str]) -> None:
    from tricorn.core.sockets import ssl_context

    cert, key = certificate
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["scheme"], scope["extensions"].get("tls")))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"secure"})

    srv = server(app, ssl_context=ssl_context(cert, key), certfile=cert, keyfile=key)
    with httpx.Client(base_url=srv.url, verify=False) as client:
        assert client.get("/").text == "secure"
    scheme, tls = seen[0]
    assert scheme == "https"
    assert tls["tls_version"] in (0x0303, 0x0304) and isinstance(tls["cipher_suite"], int)
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None


def test_wsgi_interface(server: Any) -> None:
    from asgi_apps import wsgi_app
    from tricorn.asgi.interface import adapt

    asgi_app, interface = adapt(wsgi_app, "wsgi", wsgi_threads=2)
    assert interface == "wsgi"
    srv = server(asgi_app, root_path="/mnt")
    with httpx.Client(base_url=srv.url) as client:
        r = client.post("/a%20b", content=b"payload")
        assert r.text == "POST /a b payload" and r.headers["content-length"] == "17"

        def gen() -> Any:
            yield b"chunk1"
            yield b"chunk2"

        assert client.put("/x", content=gen()).text == "PUT /x chunk1chunk2"
        results: list[str] = []

        def hit() -> None:
            with httpx.Client(base_url=srv.url) as c:
                results.append(c.get("/p").text)

        threads = [threading.Thread(target=hit) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == ["GET /p "] * 8


def test_asgiref_sync_to_async_endpoint(server: Any) -> None:
    """A Django-style view: blocking code run through asgiref's sync_to_async thread executor."""
    from asgiref.sync import sync_to_async

    def blocking_lookup(key: str) -> bytes:
        time.sleep(0.01)
        return f"value-of-{key}".encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await sync_to_async(blocking_lookup)(scope["path"].strip("/"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    violations: list[str] = []
    srv = server(checked(app, violations))
    with httpx.Client(base_url=srv.url) as client:
        assert [client.get(f"/k{i}").text for i in range(3)] == [
            "value-of-k0", "value-of-k1", "value-of-k2"]
    assert violations == [] and ssl.OPENSSL_VERSION
