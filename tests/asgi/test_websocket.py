"""WebSockets in tricorn-asgi, with the `websockets` library as a real client over loopback."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any

import pytest

websockets = pytest.importorskip("websockets")
from tricorn.core.parser import FrameParser, ws_frame  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/denial-response":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        return
    if path == "/raise-before":
        raise RuntimeError("boom")
    if path == "/return-before":
        return
    sub = scope["subprotocols"][-1] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": sub,
                "headers": [(b"x-tricorn", b"yes")]})
    if path == "/scope":
        info = {k: scope[k] for k in ("scheme", "path", "query_string", "subprotocols",
                                      "http_version")}
        info["origin"] = dict(scope["headers"]).get(b"origin", b"").decode()
        info["ext"] = sorted(scope["extensions"])
        await send({"type": "websocket.send", "text": repr(info)})
    if path == "/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        return
    if path == "/raise-after":
        raise RuntimeError("boom")
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            echo.last_disconnect = msg  # type: ignore[attr-defined]
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


def ws_url(srv: Any, path: str = "/") -> str:
    return srv.url.replace("http", "ws", 1) + path


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_echo_text_and_bytes(server: Any, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    srv = server(echo, loop=loop)

    async def go() -> None:
        async with connect(ws_url(srv), compression=None) as ws:
            await ws.send("héllo €")
            assert await ws.recv() == "héllo €"
            await ws.send(b"\x00\x01" * 1000)
            assert await ws.recv() == b"\x00\x01" * 1000
            big = os.urandom(300_000)
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(["frag", "ment", "ed"])  # fragmented message
            assert await ws.recv() == "fragmented"
            await ws.ping(b"x")
            assert ws.response.headers["x-tricorn"] == "yes"
    run(go())


def test_permessage_deflate(server: Any) -> None:
    srv = server(echo)

    async def go() -> None:
        async with connect(ws_url(srv)) as ws:  # websockets offers deflate by default
            assert "permessage-deflate" in ws.response.headers.get("sec-websocket-extensions", "")
            for i in range(5):
                text = "compress me " * 100 + str(i)
                await ws.send(text)
                assert await ws.recv() == text
            await ws.send(b"z" * 100_000)
            assert await ws.recv() == b"z" * 100_000
    run(go())


def test_deflate_off(server: Any) -> None:
    srv = server(echo, ws_per_message_deflate=False)

    async def go() -> None:
        async with connect(ws_url(srv)) as ws:
            assert "sec-websocket-extensions" not in ws.response.headers
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000
    run(go())


def test_scope_subprotocol_origin(server: Any) -> None:
    srv = server(echo)

    async def go() -> None:
        async with connect(ws_url(srv, "/scope?a=1"), subprotocols=["chat", "superchat"],
                           origin="http://example.com") as ws:
            assert ws.subprotocol == "superchat"
            info = await ws.recv()
            assert "'scheme': 'ws'" in info and "'query_string': b'a=1'" in info
            assert "'origin': 'http://example.com'" in info
            assert "['chat', 'superchat']" in info and "websocket.http.response" in info
            assert "'http_version': '1.1'" in info
    run(go())


@pytest.mark.parametrize("path,status", [("/deny", 403), ("/return-before", 403),
                                         ("/raise-before", 500), ("/denial-response", 401)])
def test_refused_handshakes(server: Any, path: str, status: int) -> None:
    srv = server(echo)

    async def go() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(srv, path)):
                pass
        assert info.value.response.status_code == status
        if path == "/denial-response":
            assert info.value.response.body == b"no entry"
    run(go())


def test_app_close_code(server: Any) -> None:
    srv = server(echo)

    async def go() -> None:
        async with connect(ws_url(srv, "/close")) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 4001 and info.value.rcvd.reason == "bye"
    run(go())


def test_app_exception_after_accept_closes_1011(server: Any) -> None:
    srv = server(echo)

    async def go() -> None:
        async with connect(ws_url(srv, "/raise-after")) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    run(go())


def test_client_close_code_reaches_app(server: Any) -> None:
    srv = server(echo)

    async def go() -> None:
        async with connect(ws_url(srv)) as ws:
            await ws.send("a")
            await ws.recv()
            await ws.close(code=4321, reason="done")
        for _ in range(50):
            if getattr(echo, "last_disconnect", None):
                break
            await asyncio.sleep(0.05)
        assert echo.last_disconnect["code"] == 4321  # type: ignore[attr-defined]
    echo.last_disconnect = None  # type: ignore[attr-defined]
    run(go())


def test_max_size_1009(server: Any) -> None:
    srv = server(echo, ws_max_size=1000)

    async def go() -> None:
        async with connect(ws_url(srv), compression=None) as ws:
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000
            await ws.send("x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    run(go())


def test_deflate_bomb_1009(server: Any) -> None:
    srv = server(echo, ws_max_size=10_000)

    async def go() -> None:
        async with connect(ws_url(srv), max_size=None) as ws:
            await ws.send("a" * 20_000)  # compresses to a few bytes, inflates past the cap
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    run(go())


# ------------------------------------------------------------------------------- raw sockets


def handshake_request(path: str = "/", **overrides: str | None) -> bytes:
    fields = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
              "Sec-WebSocket-Version": "13"}
    for k, v in overrides.items():
        k = k.replace("_", "-")
        if v is None:
            fields.pop(k, None)
        else:
            fields[k] = v
    head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n").encode()


def raw_exchange(srv: Any, data: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(srv.address, timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def test_handshake_accept_key(server: Any) -> None:
    srv = server(echo)
    req = handshake_request(**{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    out = raw_exchange(srv, req + ws_frame(8, struct.pack("!H", 1000), mask_key=7))
    assert out.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in out.lower().replace(
        b"s3pplmbitxaq9kygzzhzrbk+xoo=", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")


@pytest.mark.parametrize("overrides,status", [
    ({"Sec-WebSocket-Version": "8"}, b"426"),
    ({"Sec-WebSocket-Version": None}, b"426"),
    ({"Sec-WebSocket-Version": None, "Sec-WebSocket-Key": None, "Connection": "Upgrade, close"},
     b"200"),  # not RFC 6455: plain HTTP
    ({"Sec-WebSocket-Key": "short"}, b"400"),
    ({"Sec-WebSocket-Key": None}, b"400"),
])
def test_bad_handshakes(server: Any, overrides: dict[str, str | None], status: bytes) -> None:
    srv = server(echo)
    out = raw_exchange(srv, handshake_request(**overrides))
    assert out.startswith(b"HTTP/1.1 " + status)


def test_ws_none_serves_plain_http(server: Any) -> None:
    srv = server(echo, ws="none")
    out = raw_exchange(srv, handshake_request()[:-2] + b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"plain http")


def frames_of(data: bytes) -> list:
    p = FrameParser(server=False)
    buf = bytearray(data)
    return p.parse(buf)


@pytest.mark.parametrize("frame,code", [
    (bytes([0x82, 0xFF]) + struct.pack("!Q", 2**40) + b"\0\0\0\0", 1009),  # W2
    (bytes([0x83, 0x80, 0, 0, 0, 0]), 1002),  # reserved opcode (W4)
    (bytes([0x82, 0x00]), 1002),  # unmasked (W4)
    (ws_frame(1, b"\xff\xfe", mask_key=9), 1007),
])
def test_protocol_errors_close_with_code(server: Any, frame: bytes, code: int) -> None:
    srv = server(echo, ws_max_size=1 << 20)
    out = raw_exchange(srv, handshake_request() + frame)
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    frames = frames_of(rest)
    assert frames[-1][0] == 8 and frames[-1][4] == code


def read_frames(sock: socket.socket, count: int) -> list:
    """Read the 101 and then `count` server frames."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, data = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    p = FrameParser(server=False)
    buf = bytearray(data)
    frames = p.parse(buf)
    del buf[:p.consumed]
    while len(frames) < count:
        chunk = sock.recv(65536)
        assert chunk
        buf += chunk
        frames += p.parse(buf)
        del buf[:p.consumed]
    return frames


def test_frames_in_handshake_packet_and_byte_by_byte(server: Any) -> None:
    srv = server(echo, ws_per_message_deflate=False)
    msgs = ws_frame(1, b"one", mask_key=1) + ws_frame(2, b"two", fin=False, mask_key=2) \
        + ws_frame(9, b"p", mask_key=5) + ws_frame(0, b"!", mask_key=3)
    close = ws_frame(8, struct.pack("!H", 1000), mask_key=4)
    for split in (False, True):
        with socket.create_connection(srv.address, timeout=5) as sock:
            if split:
                sock.sendall(handshake_request())
                for i in range(len(msgs)):
                    sock.send(msgs[i:i + 1])
            else:  # frames in the same packet as the handshake
                sock.sendall(handshake_request() + msgs)
            frames = read_frames(sock, 3)
            assert sorted((f[0], f[3]) for f in frames) == [(1, b"one"), (2, b"two!"),
                                                            (10, b"p")]
            sock.sendall(close)
            assert frames_of(sock.recv(100)) == [(8, 1, 0, struct.pack("!H", 1000), 1000)]
            assert sock.recv(100) == b""


class Label(str):
    """A str subclass (as an enum member or a markup string would be)."""


async def accept_first(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts before receiving websocket.connect; answers with a str subclass."""
    if scope["type"] != "websocket":
        await echo(scope, receive, send)
        return
    await send({"type": "websocket.accept"})
    await asyncio.sleep(0.2)  # the message the client sent with its handshake is queued by now
    first, second = await receive(), await receive()
    await send({"type": "websocket.send", "text": Label(f"{first['type']} {second.get('text')}")})
    assert (await receive())["type"] == "websocket.disconnect"


def test_connect_comes_first_even_after_an_early_accept(server: Any) -> None:
    srv = server(accept_first, ws_per_message_deflate=False)
    with socket.create_connection(srv.address, timeout=5) as sock:
        sock.sendall(handshake_request() + ws_frame(1, b"hi", mask_key=7))
        assert [(f[0], f[3]) for f in read_frames(sock, 1)] == [(1, b"websocket.connect hi")]
        sock.sendall(ws_frame(8, struct.pack("!H", 1000), mask_key=4))


def test_ping_keepalive_closes_dead_peer(server: Any) -> None:
    srv = server(echo, ws_ping_interval=0.2, ws_ping_timeout=0.3)
    with socket.create_connection(srv.address, timeout=5) as sock:
        sock.sendall(handshake_request())
        out = b""
        try:
            while chunk := sock.recv(65536):  # never answers the ping
                out += chunk
        except ConnectionResetError:
            pass
    frames = frames_of(out.partition(b"\r\n\r\n")[2])
    assert frames and frames[0][0] == 9


def test_flood_pauses_reading(server: Any) -> None:
    gate = asyncio.Event()
    seen: list[int] = []

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0.5)  # the client floods meanwhile
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            seen.append(len(msg["bytes"]))
            if len(seen) == 200:
                await send({"type": "websocket.close"})

    srv = server(slow, ws_max_queue=4, ws_per_message_deflate=False)

    async def go() -> None:
        async with connect(ws_url(srv), compression=None) as ws:
            for _ in range(200):
                await ws.send(b"y" * 10_000)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    run(go())
    assert len(seen) == 200
    del gate


def test_w1_garbage_subprotocol_header_keeps_the_server_alive(server: Any) -> None:
    srv = server(echo)
    req = handshake_request("/scope")[:-2] + b"Sec-WebSocket-Protocol: \xff\xfe, ok\r\n\r\n"
    with socket.create_connection(srv.address, timeout=5) as sock:
        sock.sendall(req)
        frames = read_frames(sock, 1)
        assert "'\\xff\\xfe'" in frames[0][3].decode() or "ÿþ" in frames[0][3].decode()
    assert srv.thread.is_alive()
    assert raw_exchange(srv, handshake_request(**{"Sec-WebSocket-Key": "not base64 at all!!!!!!!"})
                        ).startswith(b"HTTP/1.1 400")


def test_w3_many_small_fragments_over_max(server: Any) -> None:
    srv = server(echo, ws_max_size=20_000)
    frames = ws_frame(2, b"a" * 1024, fin=False, mask_key=3) + b"".join(
        ws_frame(0, b"b" * 1024, fin=False, mask_key=3) for _ in range(40))
    out = raw_exchange(srv, handshake_request() + frames)
    got = frames_of(out.partition(b"\r\n\r\n")[2])
    assert got[-1][0] == 8 and got[-1][4] == 1009


def test_w6_slow_reader_pauses_sends(server: Any) -> None:
    sent: list[int] = []

    async def firehose(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        chunk = os.urandom(65536)  # incompressible
        try:
            for i in range(2000):  # 128 MiB if nobody stopped it
                await send({"type": "websocket.send", "bytes": chunk})
                sent.append(i)
        except OSError:
            pass

    srv = server(firehose, ws_per_message_deflate=False)
    import time
    with socket.create_connection(srv.address, timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(handshake_request())
        time.sleep(1.0)  # read nothing
        blocked_at = len(sent)
        assert blocked_at < 200  # send() waits for the client (a few MiB of kernel buffers at most)
        deadline = time.monotonic() + 5
        while len(sent) <= blocked_at and time.monotonic() < deadline:
            sock.recv(1 << 20)  # reading resumes the sender
        assert len(sent) > blocked_at


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    import subprocess
    folder = tmp_path_factory.mktemp("wss")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_wss_echo(server: Any, certificate: tuple[str, str], loop: str) -> None:
    """TLS transports read into the frame parser's buffer too (a buffered protocol)."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    import ssl

    from tricorn.core.sockets import ssl_context

    cert, key = certificate
    srv = server(echo, loop=loop, ssl_context=ssl_context(cert, key), certfile=cert, keyfile=key)
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE

    async def go() -> None:
        url = ws_url(srv, "/scope")
        async with connect(url, ssl=client_tls, compression=None, max_size=None) as ws:
            assert "'scheme': 'wss'" in await ws.recv()
        async with connect(ws_url(srv), ssl=client_tls, compression=None, max_size=None) as ws:
            for size in (0, 5, 200, 70_000, 1_500_000):
                data = os.urandom(size)
                await ws.send(data)
                assert await ws.recv() == data
            await ws.send(["frag", "ment"])
            assert await ws.recv() == "fragment"
    run(go())
