"""The arbiter rows of the fault plan (reliability.md §5, A1-A18) that the other files do not
cover: kill -9 under a sustained request loop, segfault, external and OOM kills told apart from
the master's own, a hung worker that ignores SIGABRT, TTOU with requests in flight, accept
fairness, a worker dying with an idle keep-alive connection.

Real processes and signals on 127.0.0.1; every load loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import signal
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from arbiter_harness import alive, http_get, wait_for
from test_servers import start

# ----------------------------------------------------------------------------------------------
# A1: kill -9 a worker every ~1 s under a request loop


@dataclass
class Attempt:
    start: float
    end: float
    ok: bool
    detail: str


class RecordingLoad:
    """`threads` clients, each sending GET `path` on a fresh connection back to back, recording
    when every request started and ended and whether it succeeded (no retries)."""

    def __init__(self, port: int, path: str, threads: int, max_requests: int,
                 max_seconds: float) -> None:
        self.port = port
        self.path = path
        self.attempts: list[Attempt] = []
        self._budget = max_requests
        self._deadline = time.monotonic() + max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if self._budget <= 0:
                    return
                self._budget -= 1
            start = time.monotonic()
            try:
                status, body = http_get(self.port, self.path, timeout=10)
                ok, detail = status == 200, f"status {status}"
            except OSError as exc:
                ok, detail = False, repr(exc)
            with self._lock:
                self.attempts.append(Attempt(start, time.monotonic(), ok, detail))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok]


def test_a1_kill9_every_second_under_load_loses_only_in_flight_requests(tricorn) -> None:
    """Five kills, about 1 s apart, of a random worker of three while six clients send requests
    (each held 20 ms by the worker, so every worker has some in flight). After each kill: the
    worker count is back to three within a bound; every failed request was in flight at a kill
    (started before the victim was gone, ended after the kill), at most one per client per kill;
    no request started after the victim was gone fails."""
    workers, clients, kills = 3, 6, 5
    master = tricorn("-w", str(workers), "-b", "127.0.0.1:0", "--respawn-backoff-uptime", "0.1")
    master.wait_ready(workers)
    load = RecordingLoad(master.port, "/slow?s=0.02", threads=clients, max_requests=20000,
                         max_seconds=30)
    rounds: list[tuple[float, float]] = []  # (kill time, victim gone)
    respawn_ms: list[float] = []
    try:
        time.sleep(0.5)
        for i in range(kills):
            victim = random.choice(sorted(master.workers()))
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda v=victim: not alive(v), 5, interval=0.002, what="the victim to die")
            rounds.append((killed_at, time.monotonic()))
            wait_for(lambda v=victim, n=workers + i + 1: (
                         len(w := master.workers()) == workers and v not in w
                         and master.ready_count() == n),
                     5, interval=0.005, what="the worker count back to N, all ready")
            respawn_ms.append((time.monotonic() - killed_at) * 1000)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - killed_at)))
        time.sleep(0.3)
    finally:
        load.stop()
    ok = sum(1 for a in load.attempts if a.ok)
    failures = load.failures
    print(f"\nA1: {kills} kills under load: {ok} ok, {len(failures)} failed; kill -> {workers} "
          f"workers ready (ms): median {statistics.median(respawn_ms):.0f}, max "
          f"{max(respawn_ms):.0f}, all {[round(x) for x in respawn_ms]}")
    assert ok > 200
    unexplained = [f for f in failures
                   if not any(f.start <= gone and f.end >= killed for killed, gone in rounds)]
    assert unexplained == [], unexplained  # none started after a victim was gone
    assert not [f for f in failures if "Refused" in f.detail], failures  # the backlog survives
    for killed, gone in rounds:
        lost = [f for f in failures if f.start <= gone and f.end >= killed]
        assert len(lost) <= clients, lost  # bounded by what was in flight
    assert statistics.median(respawn_ms) < 250 and max(respawn_ms) < 2000
    assert len(master.workers()) == workers
    assert master.log().count("was sent SIGKILL from outside the master") == kills


# ----------------------------------------------------------------------------------------------
# A2, A3, A6: how a worker died, in the log


def test_a2_segfault_is_logged_as_sigsegv_and_replaced(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    with pytest.raises(OSError):  # the worker dies mid-request: no response
        master.get("/segv", timeout=5)
    master.wait_log(r"Worker \(pid:\d+\) was killed by signal SIGSEGV")
    master.wait_ready(3)
    wait_for(lambda: len(master.workers()) == 2, 5, what="two workers")
    assert master.get("/x")[0] == 200
    log = master.log()
    assert "OOM" not in log and "out of memory" not in log
    assert "Fatal Python error: Segmentation fault" in log  # faulthandler's dump, in the log


def test_a3_a6_worker_ignoring_sigabrt_is_killed_by_the_master_distinctly(tricorn) -> None:
    """A hung worker that ignores SIGABRT (as one stuck in C code would): WORKER TIMEOUT at
    `timeout` (+1 s), SIGKILL `abort-timeout` later, replaced; the other worker serves all the
    while. The log names the master's own kill, distinct from an external SIGKILL."""
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", "--timeout", "1", "--abort-timeout", "1")
    master.wait_ready(2)
    with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
        sock.sendall(b"GET /hang?abrt=ignore HTTP/1.1\r\nHost: t\r\n\r\n")
        start = time.monotonic()
        served = 0
        deadline = start + 10
        while "was sent SIGKILL by the master (timeout)" not in master.log():
            assert time.monotonic() < deadline, master.log()
            assert master.get("/x", timeout=5)[0] == 200  # the other worker keeps serving
            served += 1
            time.sleep(0.05)
        killed_after = time.monotonic() - start
    log = master.log()
    timeout_at = log.index("WORKER TIMEOUT")
    assert timeout_at < log.index("did not exit after SIGABRT; sending SIGKILL")
    assert "possibly OOM" not in log and "from outside the master" not in log
    master.wait_ready(3)
    print(f"\nA3: hung worker ignoring SIGABRT killed {killed_after:.2f} s after the request "
          f"(timeout 1 + abort-timeout 1); {served} requests served meanwhile")
    assert 1.0 < killed_after < 2 + 1.5  # (last notify + timeout) + abort timeout, + slack
    assert served > 5


def _oom_kills() -> int | None:
    try:
        text = Path("/proc/vmstat").read_text()
    except OSError:
        return None
    match = re.search(r"^oom_kill (\d+)$", text, re.M)
    return int(match.group(1)) if match else None


def test_a6_external_sigkill_is_logged_as_possibly_oom(tricorn) -> None:
    before = _oom_kills()
    master = tricorn("-w", "1", "-b", "127.0.0.1:0")
    master.wait_ready(1)
    (pid,) = master.workers()
    os.kill(pid, signal.SIGKILL)
    master.wait_log(rf"Worker \(pid:{pid}\) was sent SIGKILL from outside the master")
    if _oom_kills() != before:  # the counter is system-wide: another process was OOM-killed
        pytest.skip("the kernel OOM-killed a process elsewhere during the test")
    master.wait_log(rf"Worker \(pid:{pid}\) was sent SIGKILL from outside the master "
                    r"\(external; possibly OOM, or an operator\)")
    master.wait_ready(2)
    assert master.get("/x")[0] == 200


def _memory_cgroup() -> tuple[Path, str] | None:
    """A memory cgroup directory this (root) process may create children in, and the name of
    its limit file; None if there is none (not root, no writable cgroup fs)."""
    if os.geteuid() != 0:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # cgroup v1
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if (base / "memory.limit_in_bytes").exists() and os.access(base, os.W_OK):
                return base, "memory.limit_in_bytes"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            try:
                enabled = (base / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if "memory" in enabled and os.access(base, os.W_OK):
                return base, "memory.max"
    return None


@contextlib.contextmanager
def _cgroup(limit_mb: int) -> Iterator[Path]:
    found = _memory_cgroup()
    if found is None:
        pytest.skip("no writable memory cgroup (needs root and a cgroup fs)")
    base, limit_file = found
    group = base / f"tricorn-oom-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
        (group / limit_file).write_text(str(limit_mb << 20))
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        pytest.skip(f"cannot create a memory cgroup: {exc}")
    try:
        yield group
    finally:
        deadline = time.monotonic() + 5  # the group is removable once its processes are gone
        while True:
            try:
                group.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_a6_kernel_oom_kill_is_logged_as_out_of_memory(tricorn) -> None:
    """A real OOM kill: the worker is moved into a memory cgroup limited to 64 MiB and asked to
    allocate 200 MiB. The kernel kills it (SIGKILL); the master says it was out of memory."""
    master = tricorn("-w", "1", "-b", "127.0.0.1:0")
    master.wait_ready(1)
    (pid,) = master.workers()
    with _cgroup(64) as group:
        try:
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            pytest.skip(f"cannot move the worker into the cgroup: {exc}")
        with pytest.raises(OSError):
            master.get("/leak?mb=200", timeout=10)
        master.wait_log(rf"Worker \(pid:{pid}\) was sent SIGKILL from outside the master: "
                        r"out of memory \(the kernel's OOM killer killed \d+ process")
        wait_for(lambda: not alive(pid), 5, what="the worker to be gone")
    master.wait_ready(2)
    assert master.get("/x")[0] == 200
    assert "possibly OOM" not in master.log()


# ----------------------------------------------------------------------------------------------
# A9: a non-worker child exiting 3


@pytest.mark.parametrize("hook,command", [("on_starting", "exit 3"),
                                          ("post_fork", "exit 3"),
                                          ("when_ready", "sleep 0.3; exit 3")])
def test_a9_non_worker_child_exiting_3_is_ignored(tricorn, tmp_path: Path, hook: str,
                                                  command: str) -> None:
    """Gunicorn #2807: a hook's subprocess that exits 3 is no worker boot failure, whenever it
    exits (before any worker, while they boot, after they are ready). post_fork runs in the
    worker: the subprocess is the worker's child, and the worker must not die of it either."""
    config = tmp_path / "conf.py"
    args = "server, worker" if hook == "post_fork" else "server"
    config.write_text("import subprocess\n\n"
                      f"def {hook}({args}):\n"
                      f"    server.helper = subprocess.Popen(['sh', '-c', {command!r}])\n")
    master = tricorn("-c", str(config), "-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    time.sleep(0.6)  # every helper has exited with 3 by now
    assert master.proc.poll() is None
    assert master.get("/x")[0] == 200
    log = master.log()
    assert "Shutting down" not in log and "exited with code 3" not in log
    assert log.count("Booting worker") == 2


# ----------------------------------------------------------------------------------------------
# A16: TTOU lets the removed worker finish its requests


def test_a16_ttou_removed_worker_finishes_in_flight_requests(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0")
    master.wait_ready(2)
    results: list[object] = []

    def slow() -> None:
        try:
            results.append(http_get(master.port, "/slow?s=1", timeout=10))
        except OSError as exc:
            results.append(exc)

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for thread in threads:  # the kernel spreads them over both workers
        thread.start()
    time.sleep(0.4)
    master.send(signal.SIGTTOU)
    master.wait_log("Workers: 2 -> 1")
    master.wait_log(r"Stopping worker \(pid:\d+\): fewer workers wanted")
    for thread in threads:
        thread.join(15)
    assert results == [(200, b"slow done")] * 6
    wait_for(lambda: len(master.workers()) == 1, 5, what="one worker")
    assert master.get("/x")[0] == 200


# ----------------------------------------------------------------------------------------------
# A17: fairness of accept over four workers

def _start(tricorn, server: str, *args: str):  # type: ignore[no-untyped-def]
    """The test worker, or a real worker class (`test_servers.start`), bound to 127.0.0.1:0."""
    if server == "test":
        return tricorn("-b", "127.0.0.1:0", *args)
    return start(tricorn, server, *args)


async def _burst(port: int, count: int) -> list[bytes | BaseException]:
    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 20)
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError(f"bad response {data[:60]!r}")
        return body

    return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count)),
                                                 return_exceptions=True), 60)


@pytest.mark.parametrize("server,reuse_port", [("test", False), ("asgi", True), ("sync", True),
                                               ("asgi", False)],
                         ids=["test-shared", "asgi-reuse-port", "sync-reuse-port", "asgi-shared"])
def test_a17_thousand_concurrent_connections_spread_over_four_workers(
    tricorn, server: str, reuse_port: bool
) -> None:
    """1000 connections opened at once, each GET /pid. All are served, and no worker starves
    (each gets at least half its share). On one shared socket the spread is what the workers'
    accept loops make of it: the test worker accepts one connection per wake-up, an asgi worker
    beside siblings at most a few (tricorn.asgi.accept; the loop's native server took whole
    bursts: a worker starved with 23 of 1000). With --reuse-port the kernel hashes connections
    over the workers' own sockets *and* the master's shared one (it is in the same SO_REUSEPORT
    group), so each worker gets at least its 1/(N+1) and the shared 1/(N+1) goes to whoever
    accepts first: up to about two shares for one worker (measured 395 of 1000). See
    docs/arbiter.md."""
    workers, count = 4, 1000
    master = _start(tricorn, server, "-w", str(workers),
                    *(["--reuse-port"] if reuse_port else []))
    master.wait_ready(workers)
    time.sleep(0.2)
    results = asyncio.run(_burst(master.port, count))
    errors = [r for r in results if isinstance(r, BaseException)]
    histogram = collections.Counter(r for r in results if isinstance(r, bytes))
    print(f"\nA17 {server} {'reuse-port' if reuse_port else 'shared socket'}: {count} "
          f"connections -> per worker {sorted(histogram.values())}, {len(errors)} errors")
    assert errors == []
    assert sum(histogram.values()) == count
    share = count / workers
    assert len(histogram) == workers
    assert min(histogram.values()) >= 0.5 * share, histogram  # nobody starves
    if not reuse_port and server == "test":  # one accept per wake-up: within +-50% both ways
        assert max(histogram.values()) <= 1.5 * share, histogram
    elif not reuse_port:  # asgi: 4 per wake-up, then sched_yield; one worker may get more than
        # 1.5 shares when the scheduler runs it alone (seen once, 441 of 1000, on a loaded machine)
        assert max(histogram.values()) <= 2 * share, histogram
    else:  # its own hashed share, plus at most the master socket's whole share
        assert max(histogram.values()) <= 1.5 * share + count / (workers + 1), histogram


# ----------------------------------------------------------------------------------------------
# A18: a worker dies holding an idle keep-alive connection


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed in the body")
        body += chunk
    return head, body


@pytest.mark.parametrize("server", ["gthread", "asgi"])
def test_a18_worker_killed_with_idle_keep_alive_connection_closes_it(tricorn, server: str) -> None:
    master = _start(tricorn, server, "-w", "2", "--keep-alive", "30")
    master.wait_ready(2)
    with socket.create_connection(("127.0.0.1", master.port), timeout=5) as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = _read_response(sock)
        assert b"close" not in head.lower()  # kept alive, now idle
        pid = int(body)
        time.sleep(0.1)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # still open and idle: nothing to read, no EOF
            sock.recv(1, socket.MSG_PEEK)
        sock.settimeout(5)
        os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        try:
            rest = sock.recv(1024)  # EOF (FIN) or a reset: not a hang (timeout 5 s)
        except ConnectionResetError:
            rest = b""
        seen_after = time.monotonic() - start
    print(f"\nA18 {server}: idle keep-alive connection closed {seen_after * 1000:.1f} ms after "
          f"the kill -9")
    assert rest == b""
    assert seen_after < 2
    status, body = master.get("/pid")
    assert status == 200 and int(body) != pid
    master.wait_log(rf"Worker \(pid:{pid}\) was sent SIGKILL from outside the master")


# ----------------------------------------------------------------------------------------------
# A13: SIGTERM with requests in flight and idle keep-alive connections


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                path: str) -> tuple[bytes, bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return head, body


async def _term_scenario(master, in_flight: int, idle: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    port = master.port
    idle_conns = []
    for _ in range(idle):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head, _ = await _http(reader, writer, "/pid")
        assert head.startswith(b"HTTP/1.1 200") and b"close" not in head.lower()
        idle_conns.append((reader, writer))

    async def slow() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head, body = await _http(reader, writer, "/slow?s=1.5")
            return head.split(b"\r\n")[0] + b" " + body
        finally:
            writer.close()

    slow_tasks = [asyncio.ensure_future(slow()) for _ in range(in_flight)]
    await asyncio.sleep(0.5)  # all in flight
    start = time.monotonic()
    master.send(signal.SIGTERM)

    async def refused() -> float:
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return time.monotonic() - start
            writer.close()
            await asyncio.sleep(0.01)

    async def closed(reader: asyncio.StreamReader) -> float:
        try:
            data = await reader.read(1024)
        except ConnectionResetError:
            data = b""
        assert data == b"", data
        return time.monotonic() - start

    refused_after = await asyncio.wait_for(refused(), 5)
    idle_closed = await asyncio.wait_for(asyncio.gather(*(closed(r) for r, _ in idle_conns)), 5)
    results = await asyncio.wait_for(asyncio.gather(*slow_tasks, return_exceptions=True), 15)
    for _, writer in idle_conns:
        writer.close()
    return {"refused_after": refused_after, "idle_closed_max": max(idle_closed),
            "results": results, "start": start}


def test_a13_sigterm_refuses_new_closes_idle_and_completes_in_flight(tricorn) -> None:
    """50 requests in flight (1.5 s each) and 100 idle keep-alive connections over two asgi
    workers, then SIGTERM: new connections are refused at once (the master and the workers
    close their listening sockets), idle connections are closed at once, every in-flight request
    completes with 200, and the master exits well within --graceful-timeout."""
    master = _start(tricorn, "asgi", "-w", "2", "--keep-alive", "30",
                    "--graceful-timeout", "10")
    master.wait_ready(2)
    outcome = asyncio.run(_term_scenario(master, in_flight=50, idle=100))
    assert master.wait_exit(10) == 0
    exited_after = time.monotonic() - outcome["start"]  # type: ignore[operator]
    results = outcome["results"]
    print(f"\nA13: refused {outcome['refused_after'] * 1000:.0f} ms after TERM; 100 idle closed "
          f"within {outcome['idle_closed_max'] * 1000:.0f} ms; master exited after "
          f"{exited_after:.2f} s")
    assert results == [b"HTTP/1.1 200 OK slow done"] * 50, results
    assert outcome["refused_after"] < 1.0  # type: ignore[operator]
    assert outcome["idle_closed_max"] < 1.0  # type: ignore[operator]
    assert exited_after < 10
