"""Big bodies in bounded memory, and clients that vanish mid-body or mid-response (P26, P27, P37)."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from wsgi_support import ServerProcess, get, one_response, raw, rss_kib, start_server

MiB = 1 << 20
SIZE = 100 * MiB


@pytest.fixture(scope="module", params=["1", "2"])
def big(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server("--threads", request.param, "--timeout-body-read", "5", "--timeout-write", "5")
    yield srv
    srv.proc.kill()
    srv.proc.wait(5)


class RssWatch:
    """Samples the server's RSS in a thread while a transfer runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = rss_kib(pid)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def idle_cpu(srv: ServerProcess, seconds: float = 1.0) -> float:
    before = cpu_seconds(srv.proc.pid)
    time.sleep(seconds)
    return cpu_seconds(srv.proc.pid) - before


def test_upload_100mib_bounded(big: ServerProcess) -> None:
    block = bytes(range(256)) * 256  # 64 KiB
    h = hashlib.sha256()
    with RssWatch(big.proc.pid) as watch, big.connect(timeout=30) as s:
        s.sendall(b"POST /hash HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % SIZE)
        for _ in range(SIZE // len(block)):
            s.sendall(block)
            h.update(block)
        s.settimeout(30)
        data = b""
        while b"}" not in data:
            more = s.recv(65536)
            if not more:
                break
            data += more
    out = json.loads(one_response(data).body)
    assert out == {"sha256": h.hexdigest(), "length": SIZE}
    assert watch.peak - watch.base < 24 * 1024, (watch.base, watch.peak)


def test_chunked_upload_bounded(big: ServerProcess) -> None:
    block = b"c" * 65536
    size = 20 * MiB
    with RssWatch(big.proc.pid) as watch, big.connect(timeout=30) as s:
        s.sendall(b"POST /hash HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(size // len(block)):
            s.sendall(b"10000\r\n" + block + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        s.settimeout(30)
        data = s.recv(65536)
    out = json.loads(one_response(data).body)
    assert out == {"sha256": hashlib.sha256(block * (size // len(block))).hexdigest(),
                   "length": size}
    assert watch.peak - watch.base < 24 * 1024


def test_download_100mib_bounded(big: ServerProcess) -> None:
    with RssWatch(big.proc.pid) as watch, big.connect(timeout=30) as s:
        s.sendall(get(path=f"/download?size={SIZE}"))
        s.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        got = len(head.split(b"\r\n\r\n", 1)[1])
        while got < SIZE:
            more = s.recv(1 << 20)
            if not more:
                break
            got += len(more)
    assert got == SIZE
    assert watch.peak - watch.base < 24 * 1024


def rst_close(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.mark.parametrize("closer", [rst_close, lambda s: s.close()])
def test_client_disconnect_mid_body(big: ServerProcess, closer: Callable[[socket.socket], None]
                                    ) -> None:
    big.clear_state("closed")
    s = big.connect()
    s.sendall(b"POST /consume?tag=midbody HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
              % (10 * MiB))
    s.sendall(b"x" * MiB)
    time.sleep(0.1)
    closer(s)
    assert big.wait_state("closed") == ["midbody"]
    assert one_response(raw(big, get(extra="Connection: close\r\n"))).status == 200
    assert idle_cpu(big, 0.5) < 0.1  # no busy loop after the disconnect


@pytest.mark.parametrize("closer", [rst_close, lambda s: s.close()])
def test_client_disconnect_mid_response(big: ServerProcess,
                                        closer: Callable[[socket.socket], None]) -> None:
    big.clear_state("closed")
    s = big.connect()
    s.sendall(get(path=f"/download?size={1 << 30}&tag=midresp"))
    s.settimeout(5)
    got = 0
    while got < 2 * MiB:
        got += len(s.recv(65536))
    closer(s)
    assert big.wait_state("closed") == ["midresp"]
    assert one_response(raw(big, get(extra="Connection: close\r\n"))).status == 200
    assert idle_cpu(big, 0.5) < 0.1


def test_half_close_after_request(big: ServerProcess) -> None:
    """P37: request, then shutdown(SHUT_WR): the response still arrives; no busy loop."""
    with big.connect() as s:
        s.sendall(get(path="/stream?n=3"))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(3)
        data = b""
        while True:
            more = s.recv(65536)
            if not more:
                break
            data += more
    assert one_response(data).body == b"part0\npart1\npart2\n"
    assert idle_cpu(big, 0.5) < 0.1


def test_slow_reader_is_dropped(server_factory) -> None:  # type: ignore[no-untyped-def]
    """P27: a client that never reads a huge response: bounded memory, closed after timeout_write."""
    srv = server_factory("--timeout-write", "0.5")
    srv.clear_state("closed")
    with RssWatch(srv.proc.pid) as watch:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.connect((srv.host, srv.port))
        s.sendall(get(path=f"/download?size={1 << 30}&tag=slowreader"))
        assert srv.wait_state("closed", timeout=5) == ["slowreader"]
        s.close()
    assert watch.peak - watch.base < 16 * 1024
    assert one_response(raw(srv, get(extra="Connection: close\r\n"))).status == 200
