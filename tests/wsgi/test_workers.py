"""Worker behaviour: keep-alive, pipelining, deadlines, slow clients, signals, exit codes, binds."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from wsgi_support import (
    HERE,
    ServerProcess,
    get,
    is_closed,
    one_response,
    parse_responses,
    raw,
    recv_until_closed,
    start_server,
)


def test_sync_closes_after_each_response(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    with srv.connect() as s:
        s.sendall(get())
        resp = one_response(s.recv(10000))
        assert resp.header("connection") == "close"
        assert is_closed(s)


@pytest.mark.parametrize("threads", ["1", "4"])
def test_pipelining_in_order(server_factory, threads: str) -> None:  # type: ignore[no-untyped-def]
    """P28: three pipelined requests, the slow one first: answers in order, byte-exact."""
    srv = server_factory("--threads", threads)
    req = get(path="/slow?s=0.2") + get(path="/stream?n=2") + get(path="/", extra="Connection: close\r\n")
    data = raw(srv, req, expect=None)
    responses, rest = parse_responses(data)
    assert [r.body for r in responses] == [b"slept\n", b"part0\npart1\n", b"hello world\n"]
    assert rest == b""
    assert responses[-1].header("connection") == "close"


def test_pipelined_invalid_after_valid(server: ServerProcess) -> None:
    """P29: the valid request is answered, then 400 and close; the third never runs."""
    server.clear_state("closed")
    req = get(path="/tracked?tag=p29a") + b"GARBAGE\r\n\r\n" + get(path="/tracked?tag=p29b")
    responses, _ = parse_responses(raw(server, req, expect=None))
    assert [r.status for r in responses] == [200, 400]
    time.sleep(0.2)
    assert server.state_lines("closed") == ["p29a"]


def test_connection_close_stops_pipeline(server: ServerProcess) -> None:
    """P30: a request with Connection: close; the pipelined second one is not executed."""
    server.clear_state("closed")
    req = get(path="/tracked?tag=p30a", extra="Connection: close\r\n") + get(path="/tracked?tag=p30b")
    responses, _ = parse_responses(raw(server, req, expect=None))
    assert len(responses) == 1
    time.sleep(0.2)
    assert server.state_lines("closed") == ["p30a"]


def test_gthread_keep_alive_and_http10(server_factory) -> None:  # type: ignore[no-untyped-def]
    """P31/P32: HTTP/1.1 persists; 1.0 only with keep-alive; idle connections close in time."""
    srv = server_factory("--threads", "2", "--keep-alive", "1")
    with srv.connect() as s:
        for _ in range(3):
            s.sendall(get())
            resp = one_response(s.recv(10000))
            assert resp.status == 200 and resp.header("connection") is None
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        resp = one_response(s.recv(10000))
        assert resp.header("connection") == "keep-alive"
        start = time.monotonic()
        assert is_closed(s, 3)
        assert 0.5 < time.monotonic() - start < 1.8
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(3)
        assert one_response(s.recv(10000)).header("connection") == "close"
        assert is_closed(s)
    with httpx.Client(base_url=srv.url) as client:  # a real keep-alive client
        for i in range(20):
            assert client.post("/echo", content=b"x" * i).content == b"x" * i


@pytest.mark.parametrize("threads", ["1", "2"])
def test_header_read_deadline(server_factory, threads: str) -> None:  # type: ignore[no-untyped-def]
    """A client that dribbles its head is closed at the header deadline (408)."""
    srv = server_factory("--threads", threads, "--timeout-header-read", "1")
    with srv.connect() as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        for _ in range(10):
            time.sleep(0.2)
            try:
                s.sendall(b"X-a: b\r\n")
            except OSError:
                break
        data = b""
        s.settimeout(3)
        try:
            data = s.recv(10000)
        except OSError:
            pass
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408") or data == b""
    assert elapsed < 2.8
    with srv.connect() as s:  # idle connection: closed silently at the deadline
        start = time.monotonic()
        assert is_closed(s, 4)
        assert 0.7 < time.monotonic() - start < 2.2


def test_slow_clients_do_not_pin_gthreads(server_factory) -> None:  # type: ignore[no-untyped-def]
    """More slow-head clients than threads: a normal request is still answered at once."""
    srv = server_factory("--threads", "2")
    slow = []
    try:
        for _ in range(8):
            s = srv.connect()
            s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            slow.append(s)
        time.sleep(0.2)
        start = time.monotonic()
        resp = one_response(raw(srv, get(extra="Connection: close\r\n")))
        assert resp.status == 200 and time.monotonic() - start < 1.0
    finally:
        for s in slow:
            s.close()


def test_worker_connections_limit(server_factory) -> None:  # type: ignore[no-untyped-def]
    """At the limit new connections wait in the backlog; they are served once one closes."""
    srv = server_factory("--threads", "2", "--worker-connections", "2")
    a, b = srv.connect(), srv.connect()
    try:
        a.sendall(get())
        one_response(a.recv(10000))
        b.sendall(get())
        one_response(b.recv(10000))
        c = srv.connect()  # the kernel accepts it into the backlog
        c.sendall(get(extra="Connection: close\r\n"))
        c.settimeout(0.5)
        with pytest.raises((socket.timeout, TimeoutError)):
            c.recv(10000)
        a.close()
        c.settimeout(3)
        assert one_response(c.recv(10000)).status == 200
        c.close()
    finally:
        a.close()
        b.close()


def test_body_read_timeout(server_factory) -> None:  # type: ignore[no-untyped-def]
    """P25: a body that stops arriving is abandoned after --timeout-body-read; the worker goes on."""
    srv = server_factory("--timeout-body-read", "0.5")
    srv.clear_state("closed")
    with srv.connect() as s:
        s.sendall(b"POST /hash HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        start = time.monotonic()
        assert is_closed(s, 3)
        assert time.monotonic() - start < 1.5
    assert one_response(raw(srv, get(extra="Connection: close\r\n"))).status == 200


# -------------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("threads", ["1", "3"])
def test_sigterm_graceful(server_factory, threads: str) -> None:  # type: ignore[no-untyped-def]
    """A13: in-flight requests complete (with close); new connections are refused; exit 0."""
    srv = server_factory("--threads", threads, "--graceful-timeout", "5")
    idle = srv.connect()
    if threads != "1":  # an idle keep-alive connection
        idle.sendall(get())
        one_response(idle.recv(10000))
    else:  # the sync worker would be serving it: use it for the slow request instead
        idle.close()
    results: list[bytes] = []

    def slow() -> None:
        results.append(raw(srv, get(path="/slow?s=0.8"), timeout=5))

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=1).close()
    if threads != "1":
        assert is_closed(idle, 1)  # idle keep-alive connections close at once
    idle.close()
    t.join(5)
    assert srv.proc.wait(5) == 0
    assert time.monotonic() - start < 3
    resp = one_response(results[0])
    assert resp.status == 200 and resp.body == b"slept\n"
    assert resp.header("connection") == "close"


def test_sighup_retires_and_serves_idle_keep_alive(server_factory) -> None:  # type: ignore[no-untyped-def]
    """SIGHUP (retire): an idle keep-alive connection is not cut off; a request sent on it is
    served with close; an untouched one closes at its keep-alive deadline; then exit 0."""
    srv = server_factory("--threads", "2", "--keep-alive", "1.5", "--graceful-timeout", "10")
    used, untouched = srv.connect(), srv.connect()
    for s in (used, untouched):
        s.sendall(get())
        assert one_response(s.recv(10000)).status == 200
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.4)
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=1).close()
    used.sendall(get())
    resp = one_response(recv_until_closed(used))
    assert resp.status == 200 and resp.header("connection") == "close"
    assert is_closed(untouched, 3)
    assert 1.0 < time.monotonic() - start < 2.5  # its keep-alive deadline, not at once
    assert srv.proc.wait(5) == 0
    for s in (used, untouched):
        s.close()


def test_sighup_keeps_a_connection_whose_response_promised_keep_alive(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A response whose head went out (persistent) before SIGHUP: once it ends, the client may send
    its next request on the same connection at once, and gets an answer (with close)."""
    srv = server_factory("--threads", "2", "--keep-alive", "5")
    with srv.connect() as s:
        s.settimeout(5)
        s.sendall(get(path="/slowstream?s=0.6"))
        data = b""
        while b"first;" not in data:
            data += s.recv(65536)
        assert b"connection: close" not in data.lower()
        srv.proc.send_signal(signal.SIGHUP)
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        s.sendall(get())
        resp = one_response(recv_until_closed(s))
        assert resp.status == 200 and resp.header("connection") == "close"
    assert srv.proc.wait(5) == 0


@pytest.mark.parametrize("threads", ["1", "2"])
def test_graceful_timeout_exceeded(server_factory, threads: str) -> None:  # type: ignore[no-untyped-def]
    """A14: a request longer than graceful_timeout: the process exits at about that time."""
    srv = server_factory("--threads", threads, "--graceful-timeout", "1")
    t = threading.Thread(target=lambda: raw(srv, get(path="/slow?s=30"), timeout=5))
    t.start()
    time.sleep(0.3)
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(5) == 1  # stopped, but not gracefully
    assert 0.7 < time.monotonic() - start < 2.5
    t.join(6)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_quick_stop(server_factory, sig: int, threads: str) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory("--threads", threads)
    t = threading.Thread(target=lambda: raw(srv, get(path="/slow?s=30"), timeout=5))
    t.start()
    time.sleep(0.3)
    start = time.monotonic()
    srv.proc.send_signal(sig)
    assert srv.proc.wait(5) == 0
    assert time.monotonic() - start < 1.5
    t.join(6)


# -------------------------------------------------------------------------- command and binds


def run_cmd(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tricorn.wsgi", "--chdir", str(HERE), *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_exit_codes() -> None:
    assert run_cmd("-b", "127.0.0.1:0", "no_such_module:app").returncode == 4
    assert run_cmd("-b", "127.0.0.1:0", "tricorn_test_apps:no_such_attr").returncode == 4
    assert run_cmd("-b", "127.0.0.1:0", "--threads", "0", "tricorn_test_apps:app").returncode == 2
    assert run_cmd("-b", "127.0.0.1:0").returncode == 2  # no app
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cmd("-b", f"127.0.0.1:{port}", "tricorn_test_apps:app")
        assert proc.returncode == 3 and "cannot listen" in proc.stderr
    proc = run_cmd("--certfile", "/nonexistent.pem", "-b", "127.0.0.1:0", "tricorn_test_apps:app")
    assert proc.returncode == 3
    out = run_cmd("--help")
    assert out.returncode == 0 and "--threads" in out.stdout and "--header-map" in out.stdout
    assert run_cmd("--version").stdout.startswith("tricorn-wsgi ")


def test_ipv6_and_several_binds(server_factory) -> None:  # type: ignore[no-untyped-def]
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    srv = server_factory("-b", "[::1]:0", "--threads", "2", bind="127.0.0.1:0")
    urls = [line.split("Listening at: ")[1].split()[0]
            for line in srv.log().splitlines() if "Listening at: " in line]
    assert len(urls) == 2 and any("[::1]" in u for u in urls)
    for url in urls:
        env = httpx.get(f"{url}/environ").json()
        assert env["REMOTE_ADDR"] in ("127.0.0.1", "::1")


def test_fd_bind() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    srv = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tricorn.wsgi", "--chdir", str(HERE), "--fd", str(fd),
             "tricorn_test_apps:app"], pass_fds=(fd,), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        srv = proc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                assert r.text == "hello world\n"
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("server on an inherited fd did not answer")
    finally:
        listener.close()
        if srv is not None:
            srv.kill()
            srv.wait(5)


def test_config_file_and_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "tricorn.conf.py"
    conf.write_text("threads = 2\nkeepalive = 1\nbind = ['127.0.0.1:0']\n")
    srv = start_server("-c", str(conf), bind=None, env={"TRICORN_HEADER_MAP": "refuse"})
    try:
        assert "gthread (2 threads)" in srv.log()
        resp = one_response(raw(srv, get(extra="X_A: 1\r\n")))
        assert resp.status == 400
    finally:
        srv.proc.kill()
        srv.proc.wait(5)


def test_sync_sigterm_while_waiting_for_a_head(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    with srv.connect():
        time.sleep(0.3)  # the worker has accepted it and waits for a request head
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(5) == 0
        assert time.monotonic() - start < 1.5


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sync_stop_serves_a_request_already_on_its_way(server_factory, sig: int) -> None:  # type: ignore[no-untyped-def]
    """A connection accepted before the stop is owed its response: a request sent a moment after
    the signal is answered (with close), not reset."""
    srv = server_factory()
    with srv.connect() as s:
        time.sleep(0.3)  # accepted; the worker waits for the head
        srv.proc.send_signal(sig)
        time.sleep(0.3)
        s.sendall(get())
        resp = one_response(recv_until_closed(s))
        assert resp.status == 200 and resp.header("connection") == "close"
    assert srv.proc.wait(5) == 0
