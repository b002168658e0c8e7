"""tricorn behind a real nginx, configured from docs/deploy/nginx.conf (the template the docs show).

Client addresses: the tests connect to nginx from 127.0.0.7, so "the client nginx saw" (127.0.0.7)
differs from "the peer tricorn sees" (nginx, 127.0.0.1) and trust decisions are visible.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import zlib
from pathlib import Path

import pytest
from deploy_harness import connect, free_port, get_json, read_response, request, rss_bytes

CLIENT = "127.0.0.7"
UNTRUSTED = "10.255.255.1"  # forwarded_allow_ips that does not include nginx
MiB = 1 << 20

KINDS = {
    "sync": ("-k", "sync", "deploy_app:wsgi"),
    "gthread": ("-k", "gthread", "--threads", "4", "deploy_app:wsgi"),
    "asgi": ("-k", "asgi", "deploy_app:asgi"),
}


def start_arbiter(server, kind: str, bind: str, *extra: str):  # type: ignore[no-untyped-def]
    *worker, app = KINDS[kind]
    proc = server("tricorn", "-w", "1", *worker, "-b", bind, "--graceful-timeout", "5", *extra, app)
    address = bind[5:] if bind.startswith("unix:") else ("127.0.0.1", int(bind.rsplit(":", 1)[1]))
    proc.wait_http(address)
    return proc


@pytest.mark.parametrize("style", ["nginx-x-forwarded.conf", "nginx-forwarded.conf"])
@pytest.mark.parametrize("kind", ["sync", "asgi"])
def test_proxy_headers_honoured_only_from_a_trusted_nginx(server, nginx, kind: str, style: str) -> None:
    trusted_port, untrusted_port = free_port(), free_port()
    start_arbiter(server, kind, f"127.0.0.1:{trusted_port}")  # default: 127.0.0.1,::1 trusted
    start_arbiter(server, kind, f"127.0.0.1:{untrusted_port}", "--forwarded-allow-ips", UNTRUSTED)
    spoof = [("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6;proto=https"),
             ("X-Forwarded-Host", "evil.test")]

    # nginx passes Host through (the snippets), so the host is the client's either way; what trust
    # changes is the client address and the scheme.
    trusted = nginx(f"127.0.0.1:{trusted_port}", proxy_headers=style)
    info = get_json(trusted.tls_address, "/info", source=CLIENT, tls=True, headers=spoof)
    assert (info["remote_addr"], info["scheme"], info["host"]) == (CLIENT, "https", "example.test")
    info = get_json(trusted.address, "/info", source=CLIENT, host="example.test:8080")
    assert (info["remote_addr"], info["scheme"], info["host"]) == (CLIENT, "http", "example.test:8080")

    untrusted = nginx(f"127.0.0.1:{untrusted_port}", proxy_headers=style)
    info = get_json(untrusted.tls_address, "/info", source=CLIENT, tls=True, headers=spoof)
    # nginx's own address and the scheme of the nginx -> tricorn hop
    assert (info["remote_addr"], info["scheme"], info["host"]) == ("127.0.0.1", "http", "example.test")


@pytest.mark.parametrize("kind", ["sync", "asgi"])
def test_unix_socket_upstream(server, nginx, tmp_path: Path, kind: str) -> None:
    sock, plain = tmp_path / "tricorn.sock", tmp_path / "plain.sock"
    start_arbiter(server, kind, f"unix:{sock}")
    start_arbiter(server, kind, f"unix:{plain}", "--no-proxy-headers")
    front = nginx(f"unix:{sock}")
    for _ in range(5):
        info = get_json(front.tls_address, "/info", source=CLIENT, tls=True)
        assert (info["remote_addr"], info["scheme"], info["host"]) == (CLIENT, "https", "example.test")
    # A Unix-socket peer is trusted; --no-proxy-headers turns proxy headers off entirely.
    info = get_json(nginx(f"unix:{plain}").tls_address, "/info", source=CLIENT, tls=True)
    assert info["scheme"] == "http" and info["remote_addr"] != CLIENT


@pytest.mark.parametrize("kind", ["gthread", "asgi", "sync"])
def test_upstream_keepalive(server, nginx, kind: str) -> None:
    """nginx keeps its connections to tricorn open (keepalive 32): the upstream peer ports repeat.
    (Untrusted, so the app sees nginx's real port.) The sync worker closes after each response by
    design; nginx then simply opens a new connection, and every request still succeeds."""
    port = free_port()
    start_arbiter(server, kind, f"127.0.0.1:{port}", "--forwarded-allow-ips", UNTRUSTED)
    front = nginx(f"127.0.0.1:{port}")
    ports = [get_json(front.address, "/info")["remote_port"] for _ in range(30)]
    if kind == "sync":
        assert len(set(ports)) == 30
    else:
        assert len(set(ports)) <= 4, ports  # at most one per nginx worker (worker_processes auto)


def _sample_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], rss_bytes(pid))
        except OSError:
            return
        stop.wait(0.02)


@pytest.mark.parametrize("kind", ["sync", "asgi"])
def test_100mib_upload_and_download_stream_with_bounded_memory(server, nginx, kind: str) -> None:
    port = free_port()
    master = start_arbiter(server, kind, f"127.0.0.1:{port}")
    front = nginx(f"127.0.0.1:{port}")
    get_json(front.address, "/info")  # warm: imports done, buffers allocated
    (worker,) = master.workers()
    base = rss_bytes(worker)
    peak, stop = [base], threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(worker, stop, peak), daemon=True)
    sampler.start()
    size = 100 * MiB
    block = bytes(range(256)) * (MiB // 256)
    try:
        with connect(front.address, timeout=60) as sock:
            sock.sendall((f"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          f"Content-Length: {size}\r\n\r\n").encode())
            crc = 0
            for _ in range(100):
                sock.sendall(block)
                crc = zlib.crc32(block, crc)
            status, _, body = read_response(sock)
        assert status == 200, body
        assert json.loads(body)["bytes"] == size and json.loads(body)["crc32"] == crc

        with connect(front.address, timeout=60) as sock:
            sock.sendall(f"GET /download?n={size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode())
            received, head = 0, bytearray()
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), bytes(head[:100])
            received = len(head.partition(b"\r\n\r\n")[2])
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        assert received == size
    finally:
        stop.set()
        sampler.join(5)
    growth = peak[0] - base
    print(f"\n{kind}: worker RSS {base / MiB:.1f} MiB before, peak {peak[0] / MiB:.1f} MiB "
          f"during 100 MiB up + 100 MiB down (+{growth / MiB:.1f} MiB)")
    assert growth < 16 * MiB, f"worker RSS grew by {growth / MiB:.1f} MiB"


def test_slow_clients_are_absorbed_by_nginx(server, nginx) -> None:
    """One sync worker (one request at a time). A client trickling its request body and a client that
    never reads its 20 MiB response both sit in nginx; fast clients are still answered at once."""
    port = free_port()
    start_arbiter(server, "sync", f"127.0.0.1:{port}")
    front = nginx(f"127.0.0.1:{port}")
    slow_up = connect(front.address, timeout=10)
    slow_down = connect(front.address, timeout=10)
    try:
        slow_up.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        slow_down.sendall(f"GET /download?n={20 * MiB} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.3)  # nginx has passed the download on; the worker is free again
        for _ in range(10):
            started = time.monotonic()
            assert get_json(front.address, "/info", timeout=5)["path_info"] == "/info"
            slow_up.sendall(b"x")  # still trickling
            assert time.monotonic() - started < 1.0
        # Direct to the sync worker, a trickling client holds it: the contrast nginx removes.
        with connect(("127.0.0.1", port), timeout=5) as direct_slow:
            direct_slow.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nxx")
            time.sleep(0.2)
            with pytest.raises(TimeoutError):
                request(("127.0.0.1", port), "/info", timeout=0.7)
    finally:
        slow_up.close()
        slow_down.close()


@pytest.mark.parametrize("kind", ["sync", "asgi"])
def test_root_path_under_a_prefix(server, nginx, kind: str) -> None:
    port = free_port()
    start_arbiter(server, kind, f"127.0.0.1:{port}", "--root-path", "/app")
    front = nginx(f"127.0.0.1:{port}", prefix="/app")
    info = get_json(front.address, "/app/info")
    assert (info["script_name"], info["path_info"]) == ("/app", "/info")
    status, _, _ = request(front.address, "/other/info")  # outside the prefix: nginx's 404
    assert status == 404


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (payload < 64 KiB)."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | len(payload)]) if len(payload) < 126 else \
        bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _ws_read(sock, buffer: bytearray) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    """One unmasked server frame: (opcode, payload)."""
    def need(n: int) -> None:
        while len(buffer) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            buffer.extend(chunk)
    need(2)
    opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
    if length == 126:
        need(4)
        length, offset = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        need(10)
        length, offset = int.from_bytes(buffer[2:10], "big"), 10
    need(offset + length)
    payload = bytes(buffer[offset:offset + length])
    del buffer[:offset + length]
    return opcode, payload


def _ws_handshake(address, path: str = "/chat"):  # type: ignore[no-untyped-def]
    """Open a WebSocket through nginx (TLS, from CLIENT); returns (socket, buffer, first message)."""
    sock = connect(address, source=CLIENT, tls=True, timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = bytearray()
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, bytes(head)
        head += chunk
    raw_head, _, rest = bytes(head).partition(b"\r\n\r\n")
    assert raw_head.startswith(b"HTTP/1.1 101"), raw_head
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    fields = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
              for line in raw_head.split(b"\r\n")[1:]}
    assert fields[b"sec-websocket-accept"] == accept.encode()
    buffer = bytearray(rest)
    opcode, payload = _ws_read(sock, buffer)
    assert opcode == 1
    return sock, buffer, json.loads(payload)


@pytest.mark.parametrize("upstream", ["tcp", "unix"])
def test_websocket_through_nginx(server, nginx, tmp_path: Path, upstream: str) -> None:
    """Upgrade/Connection passed by the template's map; messages both ways; a clean close."""
    bind = f"127.0.0.1:{free_port()}" if upstream == "tcp" else f"unix:{tmp_path / 'ws.sock'}"
    start_arbiter(server, "asgi", bind)
    front = nginx(bind)
    sock, buffer, hello = _ws_handshake(front.tls_address)
    with sock:
        assert hello["path"] == "/chat"
        for i in range(20):  # bounded
            text = f"message {i} " + "x" * (i * 500)
            sock.sendall(_ws_frame(1, text.encode()))
            assert _ws_read(sock, buffer) == (1, text.encode())
        sock.sendall(_ws_frame(8, (1000).to_bytes(2, "big")))
        opcode, payload = _ws_read(sock, buffer)
        assert opcode == 8 and payload[:2] == (1000).to_bytes(2, "big")
    # Plain requests still use the kept-alive upstream connections afterwards.
    assert get_json(front.address, "/info")["path_info"] == "/info"


def test_websocket_scope_honours_proxy_headers_from_trusted_nginx(server, nginx) -> None:
    port = free_port()
    start_arbiter(server, "asgi", f"127.0.0.1:{port}")
    sock, _, hello = _ws_handshake(nginx(f"127.0.0.1:{port}").tls_address)
    sock.close()
    assert (hello["remote_addr"], hello["scheme"]) == (CLIENT, "wss")
