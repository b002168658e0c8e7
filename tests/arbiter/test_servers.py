"""The arbiter with the real worker classes: ``sync`` and ``gthread`` (tricorn-wsgi) and ``asgi``
(tricorn-asgi). Same promises as with the test worker: fast respawn, hung-worker detection from
the thread/loop that does the work, zero failed requests across a HUP, graceful stop."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import statistics
import threading
import time

import pytest
from arbiter_harness import http_get, wait_for
from test_reload import LoadLoop

SERVERS = {
    "sync": ("sync", [], "wsgi_app:app", "/hang"),
    "gthread": ("gthread", ["--threads", "4"], "wsgi_app:app", None),
    "asgi": ("asgi", [], "asgi_app:app", "/block"),
}

ALL_SERVERS = pytest.mark.parametrize("server", list(SERVERS))
# gthread's heartbeat comes from its main thread, which an app never blocks: no hang to detect.
BLOCKABLE_SERVERS = pytest.mark.parametrize("server", [s for s, v in SERVERS.items() if v[3]])


def start(tricorn, server: str, *args: str):  # type: ignore[no-untyped-def]
    worker_class, extra, app, _ = SERVERS[server]
    package = "tricorn.asgi" if worker_class == "asgi" else "tricorn.wsgi"
    if importlib.util.find_spec(package) is None:  # (not imported here: see test_contract.py)
        pytest.skip(f"{package} is not installed")
    return tricorn("-b", "127.0.0.1:0", *extra, *args, worker_class=worker_class, app=app)


@ALL_SERVERS
def test_respawn_and_graceful_stop(tricorn, server: str) -> None:
    master = start(tricorn, server, "-w", "2", "--respawn-backoff-uptime", "0")
    master.wait_ready(2)
    assert master.get("/")[0] == 200
    latencies = []
    for round_ in range(3):
        victim = int(master.get("/pid")[1])
        start_time = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        master.wait_ready(round_ + 3, timeout=10)
        wait_for(lambda v=victim: len(master.workers()) == 2 and v not in master.workers(), 5,
                 what="two workers")
        latencies.append((time.monotonic() - start_time) * 1000)
    print(f"\n{server}: kill -9 -> replacement ready (ms): median "
          f"{statistics.median(latencies):.0f}, all {[round(x) for x in latencies]}")

    results: list[object] = []

    def slow() -> None:
        try:
            results.append(http_get(master.port, "/slow?s=1", timeout=10))
        except OSError as exc:
            results.append(exc)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.4)
    master.send(signal.SIGTERM)
    for thread in threads:
        thread.join(15)
    assert master.wait_exit(15) == 0
    assert results == [(200, b"slow done")] * 2


@ALL_SERVERS
def test_hup_under_load_loses_nothing(tricorn, server: str) -> None:
    master = start(tricorn, server, "-w", "2")
    master.wait_ready(2)
    before = master.workers()
    load = LoadLoop(master.port, threads=2, max_requests=3000, max_seconds=25)
    try:
        time.sleep(0.3)
        master.send(signal.SIGHUP)
        master.wait_log("Reload complete", timeout=15)
        time.sleep(0.3)
    finally:
        load.stop()
    print(f"\n{server}: HUP under load: {load.ok} ok, {len(load.failures)} failed")
    assert load.failures == []
    assert not (master.workers() & before)


@ALL_SERVERS
def test_hup_with_idle_keep_alive_clients_loses_nothing(tricorn, server: str) -> None:
    """Clients keep their connections and pause between requests, so at the HUP most of them sit
    idle in the retiring workers: none may be cut off while it sends its next request."""
    master = start(tricorn, server, "-w", "2", "--keep-alive", "5")
    master.wait_ready(2)
    before = master.workers()
    load = LoadLoop(master.port, threads=8, max_requests=6000, max_seconds=25,
                    keep_alive=True, think=0.02)
    try:
        time.sleep(0.5)
        for _ in range(2):
            master.send(signal.SIGHUP)
            master.wait_log("Reload complete", timeout=15)
            time.sleep(0.5)
    finally:
        load.stop()
    print(f"\n{server}: HUP with keep-alive clients: {load.ok} ok, {len(load.failures)} failed")
    assert load.failures == []
    assert load.ok > 100
    assert not (master.workers() & before)


@BLOCKABLE_SERVERS
def test_blocked_worker_is_aborted_and_replaced(tricorn, server: str) -> None:
    path = SERVERS[server][3]
    master = start(tricorn, server, "-w", "1", "--timeout", "1")
    master.wait_ready(1)
    (pid,) = master.workers()
    with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        master.wait_log(rf"WORKER TIMEOUT \(pid:{pid}\)", timeout=8)
    master.wait_log(r"(?s)Thread 0x.*_app\.py", timeout=5)  # the stack shows the app's frame
    master.wait_ready(2, timeout=10)
    assert master.get("/")[0] == 200


def test_two_asgi_workers_serve_tls_through_the_fair_acceptor(tricorn, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two asgi workers share the socket, so they accept with tricorn.asgi.accept.Acceptor: TLS
    (its handshake) and plain requests go through it, and both workers get connections."""
    import ssl
    import subprocess

    import httpx

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    master = start(tricorn, "asgi", "-w", "2", "--certfile", str(cert), "--keyfile", str(key))
    master.wait_ready(2)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    pids = set()
    for _ in range(40):
        with httpx.Client(verify=context, timeout=10) as client:
            response = client.get(f"https://127.0.0.1:{master.port}/pid")
        assert response.status_code == 200
        pids.add(response.text)
    assert pids <= {str(pid) for pid in master.workers()} and len(pids) == 2
