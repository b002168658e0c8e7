"""The master's core promises, with real processes and signals: respawn, heartbeat timeout, boot
failures, graceful and quick stops, parent death, TTIN/TTOU."""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import threading
import time

from arbiter_harness import alive, http_get, wait_for


def test_serves_and_stops_on_term(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    status, body = master.get("/hello")
    assert (status, body) == (200, b"hello from /hello")
    workers = master.workers()
    assert len(workers) == 2
    master.send(signal.SIGTERM)
    assert master.wait_exit(10) == 0
    assert not any(alive(pid) for pid in workers)
    assert "Shutting down: master (exit 0)" in master.log()


def test_kill9_worker_is_replaced_fast(tricorn) -> None:
    """kill -9 the only worker; a request sent right after waits in the master's listen queue and
    is answered by the replacement: no refused connection. Measures kill -> answer latency."""
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--respawn-backoff-uptime", "0.2")
    master.wait_ready(1)
    latencies = []
    for round_ in range(5):
        (pid,) = wait_for(lambda: master.workers() if len(master.workers()) == 1 else None, 5,
                          what="one worker")
        assert master.get("/pid")[1] == str(pid).encode()
        start = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        status, body = http_get(master.port, "/pid", timeout=10)
        latencies.append((time.monotonic() - start) * 1000)
        assert status == 200 and body != str(pid).encode()
        master.wait_ready(round_ + 2)
        time.sleep(0.25)  # older than --respawn-backoff-uptime: not a crash loop
    print(f"\nrespawn latency kill -9 -> replacement answers (ms): "
          f"median {statistics.median(latencies):.1f}, max {max(latencies):.1f}, all "
          f"{[round(x, 1) for x in latencies]}")
    assert statistics.median(latencies) < 250
    assert "was sent SIGKILL from outside the master" in master.log()


def test_hung_worker_gets_sigabrt_with_stack_then_is_replaced(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--timeout", "1", "--abort-timeout", "2")
    master.wait_ready(1)
    (pid,) = master.workers()
    with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
        sock.sendall(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
        start = time.monotonic()
        master.wait_log(rf"WORKER TIMEOUT \(pid:{pid}\)", timeout=6)
        detected = time.monotonic() - start
    master.wait_log(r"Current thread|Thread 0x", timeout=5)  # faulthandler's dump
    master.wait_log(r"in _dispatch", timeout=5)  # the frame that blocks
    master.wait_log(rf"worker {pid}: SIGABRT", timeout=5)
    master.wait_ready(2, timeout=10)
    assert master.get("/hello")[0] == 200
    assert detected < 1 + 1.5 + 1  # timeout + one tick + slack for a loaded machine


def test_boot_failure_exits_3_quickly(tricorn) -> None:
    start = time.monotonic()
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", worker_class="bad_worker:BadWorker")
    assert master.wait_exit(15) == 3
    assert time.monotonic() - start < 10
    log = master.log()
    assert "cannot boot" in log  # the reason is in the log
    assert len(re.findall("Booting worker", log)) <= 3


def test_app_import_failure_exits_4(tricorn) -> None:
    """reliability.md A7: exit 4 quickly, the error in the log, no respawn loop."""
    start = time.monotonic()
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", app="import_fails:app")
    assert master.wait_exit(15) == 4
    elapsed = time.monotonic() - start
    log = master.log()
    print(f"\nA7: app import failure -> master exited 4 after {elapsed:.2f} s (process start "
          f"included)")
    assert "this app fails at import" in log
    assert len(re.findall("Booting worker", log)) <= 2  # the first two, never a replacement
    assert elapsed < 5


def test_preload_app_import_failure_exits_4_without_forking(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", "--preload", app="import_fails:app")
    assert master.wait_exit(15) == 4
    assert "Booting worker" not in master.log()


def test_signal_death_during_boot_stops_the_crash_loop(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--boot-failure-limit", "3",
                     app="dies_at_boot:app")
    assert master.wait_exit(20) == 3
    log = master.log()
    assert len(re.findall("Booting worker", log)) == 3
    assert "3 workers in a row died before becoming ready" in log


def test_crash_after_ready_is_respawned_with_backoff(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--respawn-backoff-max", "1")
    master.wait_ready(1)
    for i in range(3):
        try:
            master.get("/exit?code=1", timeout=5)
        except OSError:
            pass
        master.wait_ready(i + 2, timeout=10)
    log = master.log()
    assert "exited with code 1" in log
    assert "Workers keep crashing (2 in a row)" in log
    assert master.get("/hello")[0] == 200
    assert master.proc.poll() is None


def test_ttin_ttou(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    master.send(signal.SIGTTIN)
    wait_for(lambda: len(master.workers()) == 3, 5, what="3 workers")
    master.wait_ready(3)
    master.send(signal.SIGTTOU)  # (two signals sent at once may coalesce into one)
    wait_for(lambda: len(master.workers()) == 2, 5, what="2 workers")
    master.send(signal.SIGTTOU)
    wait_for(lambda: len(master.workers()) == 1, 5, what="1 worker")
    master.send(signal.SIGTTOU)  # never below one
    time.sleep(0.3)
    assert len(master.workers()) == 1
    assert master.get("/hello")[0] == 200


def test_graceful_term_completes_in_flight_requests(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", "--graceful-timeout", "10")
    master.wait_ready(2)
    results: list[object] = []

    def slow() -> None:
        try:
            results.append(http_get(master.port, "/slow?s=1.5", timeout=10))
        except OSError as exc:
            results.append(exc)

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all six are in flight
    start = time.monotonic()
    master.send(signal.SIGTERM)
    for thread in threads:
        thread.join(15)
    assert master.wait_exit(10) == 0
    assert results == [(200, b"slow done")] * 6
    assert time.monotonic() - start < 6


def test_graceful_timeout_exceeded_kills(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout", "1")
    master.wait_ready(1)

    def slow() -> None:
        try:
            http_get(master.port, "/slow?s=30", timeout=10)
        except OSError:
            pass

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    master.send(signal.SIGTERM)
    master.wait_exit(10)
    assert time.monotonic() - start < 4
    assert "SIGKILL" in master.log()


def test_quick_stop_on_int(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    start = time.monotonic()
    master.send(signal.SIGINT)
    assert master.wait_exit(10) == 0
    assert time.monotonic() - start < 3


def test_master_sigkill_workers_exit_and_port_is_freed(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    port = master.port
    workers = master.workers()
    start = time.monotonic()
    master.proc.kill()
    master.proc.wait(5)
    wait_for(lambda: not any(alive(pid) for pid in workers), 5, what="workers to exit")
    elapsed = time.monotonic() - start
    print(f"\nworkers gone {elapsed * 1000:.0f} ms after the master's SIGKILL")
    def port_free() -> bool:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    wait_for(port_free, 3, interval=0.05, what="the port to be free")
    assert elapsed < 3


def test_quit_during_graceful_stop_escalates(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout", "20")
    master.wait_ready(1)
    thread = threading.Thread(target=lambda: _ignore(http_get, master.port, "/slow?s=30", 10),
                              daemon=True)
    thread.start()
    time.sleep(0.3)
    master.send(signal.SIGTERM)
    time.sleep(0.3)
    start = time.monotonic()
    master.send(signal.SIGQUIT)
    master.wait_exit(10)
    assert time.monotonic() - start < 3


def _ignore(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except OSError:
        return None
