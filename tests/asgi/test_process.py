"""The real command in a subprocess: the bound address, exit codes, lifespan, signals, graceful
shutdown with requests in flight, the request limit, the access log, bounded memory."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from asgi_support import connect, read_response, read_until_close


def test_port_zero_logs_the_real_address_and_serves(process: Any) -> None:
    p = process("asgi_apps:app")
    assert p.address[1] != 0
    assert httpx.get(p.url + "/").text == "hello"
    assert "Listening at: http://127.0.0.1:" in p.log


def test_exit_codes(process: Any) -> None:
    assert process("no_such_module:app", wait_ready=False).wait() == 4
    assert process("asgi_apps:missing", wait_ready=False).wait() == 4
    bad = process("asgi_apps:app", "--loop", "nope", wait_ready=False)
    assert bad.wait() == 2 and "loop" in bad.log
    assert process("asgi_apps:failing_startup", wait_ready=False).wait() == 3
    raising = process("asgi_apps:raising_startup", "--lifespan", "on", wait_ready=False)
    assert raising.wait() == 3 and "startup exploded" in raising.log


def test_lifespan_state_and_shutdown(process: Any, tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.txt"
    p = process("asgi_apps:app", "--lifespan", "on",
                env={"TRICORN_TEST_SHUTDOWN_MARKER": str(marker)})
    state = httpx.get(p.url + "/state").json()
    assert state["started"] == "yes"
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    assert marker.read_text() == "shutdown"


def test_lifespan_auto_serves_an_app_without_lifespan(process: Any) -> None:
    p = process("asgi_apps:http_only")
    assert httpx.get(p.url + "/").text == "http only"
    assert "appears unsupported" in p.log
    off = process("asgi_apps:http_only", "--lifespan", "off")
    assert httpx.get(off.url + "/").text == "http only"
    assert "unsupported" not in off.log


def test_factory(process: Any) -> None:
    p = process("asgi_apps:factory", "--factory")
    assert httpx.get(p.url + "/").text == "hello"


def test_graceful_shutdown_with_requests_in_flight(process: Any) -> None:
    p = process("asgi_apps:app", "--graceful-timeout", "5")
    results: list[Any] = []

    def slow() -> None:
        sock = connect(p.address, timeout=10)
        sock.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        results.append(read_response(sock))
        results.append(read_until_close(sock))

    threads = [threading.Thread(target=slow) for _ in range(5)]
    for t in threads:
        t.start()
    idle = connect(p.address)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(idle)[0] == 200
    time.sleep(0.3)
    start = time.monotonic()
    p.signal(signal.SIGTERM)
    assert read_until_close(idle) == b""  # the idle keep-alive connection goes at once
    assert time.monotonic() - start < 0.8
    time.sleep(0.1)
    try:
        refused = connect(p.address, timeout=1)
        refused.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_close(refused) == b""
    except OSError:
        pass  # refused outright: the listener is closed
    for t in threads:
        t.join(10)
    assert p.wait() == 0
    assert time.monotonic() - start < 3
    finished = [r for r in results if isinstance(r, tuple)]
    assert len(finished) == 5
    for status, headers, body in finished:
        assert (status, body, headers["connection"]) == (200, b"slept", "close")
    assert "Waiting for 5 request(s)" in p.log


def test_sighup_retires_and_serves_idle_keep_alive(process: Any) -> None:
    """SIGHUP (retire): an idle keep-alive connection is not cut off; a request sent on it is
    served with close; an untouched one closes at its keep-alive deadline; then exit 0."""
    p = process("asgi_apps:app", "--timeout-keep-alive", "1.5", "--graceful-timeout", "10")
    used, untouched = connect(p.address), connect(p.address)
    for sock in (used, untouched):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
    start = time.monotonic()
    p.signal(signal.SIGHUP)
    time.sleep(0.4)
    used.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = read_response(used)
    assert (status, headers["connection"]) == (200, "close")
    assert read_until_close(used) == b""
    assert read_until_close(untouched) == b""
    assert 1.0 < time.monotonic() - start < 2.5  # its keep-alive deadline, not at once
    assert p.wait() == 0
    assert "Received SIGHUP: retiring" in p.log
    for sock in (used, untouched):
        sock.close()


def test_sighup_keeps_a_connection_whose_response_promised_keep_alive(process: Any) -> None:
    """A response whose head went out (persistent) before SIGHUP: once it ends, the client may send
    its next request on the same connection at once, and gets an answer (with close)."""
    p = process("asgi_apps:app", "--timeout-keep-alive", "5")
    sock = connect(p.address, timeout=5)
    sock.sendall(b"GET /slowstream?s=0.6 HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"first;" not in data:
        data += sock.recv(65536)
    assert b"connection: close" not in data.lower()
    p.signal(signal.SIGHUP)
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = read_response(sock)
    assert (status, headers["connection"]) == (200, "close")
    assert p.wait() == 0
    sock.close()


def test_graceful_timeout_cancels_what_is_left(process: Any) -> None:
    p = process("asgi_apps:app", "--graceful-timeout", "0.5")
    sock = connect(p.address, timeout=10)
    sock.sendall(b"GET /slow?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    start = time.monotonic()
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    assert time.monotonic() - start < 3
    out = read_until_close(sock)
    assert out == b"" or out.startswith(b"HTTP/1.1 500 ")


def test_sigint_is_quick(process: Any) -> None:
    p = process("asgi_apps:app", "--graceful-timeout", "30")
    sock = connect(p.address, timeout=10)
    sock.sendall(b"GET /slow?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    start = time.monotonic()
    p.signal(signal.SIGINT)
    assert p.wait() == 0
    assert time.monotonic() - start < 3


def test_limit_max_requests_stops_gracefully(process: Any) -> None:
    p = process("asgi_apps:app", "--limit-max-requests", "3")
    with httpx.Client(base_url=p.url) as client:
        for _ in range(3):
            assert client.get("/").status_code == 200
    assert p.wait() == 0
    assert "Maximum request limit of 3" in p.log


def test_access_log_off_by_default_on_with_a_flag(process: Any) -> None:
    quiet = process("asgi_apps:app")
    httpx.get(quiet.url + "/?x=1")
    quiet.stop()
    assert "GET /?x=1" not in quiet.log
    loud = process("asgi_apps:app", "--access-log", "--access-logformat", "json")
    httpx.get(loud.url + "/echo?x=1", headers={"user-agent": "probe"})
    loud.stop()
    lines = [json.loads(line) for line in loud.log.splitlines() if line.startswith("{")]
    assert lines and lines[0]["method"] == "GET" and lines[0]["path"] == "/echo"
    assert lines[0]["status"] == 200 and lines[0]["user_agent"] == "probe"
    assert "duration_ms" in lines[0]


def test_access_log_records_the_500_for_a_failed_application(process: Any) -> None:
    p = process("asgi_apps:app", "--access-log", "--access-logformat", "json")
    assert httpx.get(p.url + "/raise").status_code == 500
    p.stop()
    lines = [json.loads(line) for line in p.log.splitlines() if line.startswith("{")]
    assert [(line["path"], line["status"]) for line in lines] == [("/raise", 500)]
    assert "RuntimeError: the application failed" in p.log  # the traceback, in the error log


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_stays_bounded_for_a_client_that_never_reads(process: Any) -> None:
    p = process("asgi_apps:app")
    httpx.get(p.url + "/")
    base = _rss_kib(p.proc.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(p.address)
    # 2 GB offered by the app in 64 KiB pieces; the client reads nothing
    sock.sendall(b"GET /stream?n=32768&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)
    grown = _rss_kib(p.proc.pid) - base
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB"
    sock.close()


def test_unix_socket(process: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    p = process("asgi_apps:app", "--uds", path, "--loop", "asyncio")
    assert f"Listening at: unix:{path}" in p.log
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://x") as client:
        assert client.get("/").text == "hello"
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    assert not Path(path).exists()  # removed on exit
