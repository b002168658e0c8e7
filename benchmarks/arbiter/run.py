#!/usr/bin/env python3
"""Benchmark the pre-fork deployments: tricorn -w 2 against gunicorn -w 2, plus respawn latency.

    python benchmarks/arbiter/run.py                      # 3 interleaved rounds, 4 s per measurement
    python benchmarks/arbiter/run.py --rounds 5 --duration 8 --out results.json

Deployments (every one a master with 2 workers on 127.0.0.1):
- ASGI face, benchmarks/asgi/app.py: ``tricorn -w 2 -k asgi``,
  ``gunicorn -w 2 -k uvicorn_worker.UvicornWorker`` (uvloop + httptools) and ``gunicorn -w 2 -k asgi``
  (gunicorn's own ASGI worker; reported as unavailable when the installed gunicorn lacks it);
- WSGI face, benchmarks/wsgi/app.py: ``tricorn -w 2 -k sync`` and ``gunicorn -w 2`` (sync).

Workloads: hello keep-alive (``/``) and a 64 KiB response (``/64k``), ``wrk -t1 -c64``, loopback.
Every round starts all deployments, then runs every workload on every deployment (order rotated per
round) after a 1 s warm-up; reported: median req/s, p99, and CPU time (user+system, from /proc) of
the whole process tree (master + workers) per request, with ratios tricorn / peer.

Respawn latency (sync, 2 workers, tricorn and gunicorn): kill -9 one worker (a child of the master,
alive for more than a second so tricorn's crash-loop back-off does not apply), then probe with fresh
connections (4 concurrent ``GET /pid`` per probe, so the surviving sync worker cannot hide the new one)
until a pid never seen before answers; the figure is the time from the kill to that response.

By default nothing is pinned: the deployments and wrk share the machine's cores, so with 2 cores
wrk competes with the workers and req/s ratios are compressed towards 1; CPU per request is the
steadier figure. ``--server-cpu 1 --wrk-cpu 0`` pins each deployment's whole process tree (master
and workers: taskset is inherited across fork) to one core and wrk to the other: every deployment
then gets the same single core, and req/s measures its capacity per core.

Peers run from a separate virtualenv (``--venv``, default /tmp/tricorn-bench-venv, with gunicorn,
uvicorn[standard] and uvicorn-worker installed if missing); tricorn from ``--tricorn-bin``
(default: the bin directory of the Python running this).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402
from common import Cell, Server  # noqa: E402

ASGI_DIR = common.BENCHMARKS / "asgi"
WSGI_DIR = common.BENCHMARKS / "wsgi"
PEERS = ["gunicorn", "uvicorn[standard]", "uvicorn-worker"]
WORKLOADS = {"hello keep-alive": "/", "64 KiB response": "/64k"}
CONNECTIONS = 64
# (deployment, peer it is compared with)
PAIRS = [
    ("tricorn -w 2 -k asgi", "gunicorn -w 2 -k uvicorn_worker.UvicornWorker"),
    ("tricorn -w 2 -k asgi", "gunicorn -w 2 -k asgi"),
    ("tricorn -w 2 -k sync", "gunicorn -w 2 (sync)"),
]


def gunicorn_has_asgi(bin_dir: Path) -> bool:
    result = subprocess.run([str(bin_dir / "gunicorn"), "--help"], capture_output=True, text=True,
                            timeout=60)
    return "--asgi-loop" in result.stdout


def deployments(tricorn: Path, peers: Path, workers: int, with_gunicorn_asgi: bool) -> list[Server]:
    env = common.clean_env()
    w = str(workers)

    def bind() -> tuple[int, str]:
        port = common.free_port()
        return port, f"127.0.0.1:{port}"

    out = []
    port, addr = bind()
    out.append(Server("tricorn -w 2 -k asgi", [str(tricorn), "-w", w, "-k", "asgi", "-b", addr,
                                               "--loop", "uvloop", "--log-level", "warning",
                                               "app:app"], port, ASGI_DIR, env))
    port, addr = bind()
    out.append(Server("gunicorn -w 2 -k uvicorn_worker.UvicornWorker",
                      [str(peers / "gunicorn"), "-w", w, "-k", "uvicorn_worker.UvicornWorker",
                       "-b", addr, "--log-level", "warning", "app:app"], port, ASGI_DIR, env))
    if with_gunicorn_asgi:
        port, addr = bind()
        out.append(Server("gunicorn -w 2 -k asgi",
                          [str(peers / "gunicorn"), "-w", w, "-k", "asgi", "--asgi-loop", "uvloop",
                           "-b", addr, "--log-level", "warning", "app:app"], port, ASGI_DIR, env))
    port, addr = bind()
    out.append(Server("tricorn -w 2 -k sync", [str(tricorn), "-w", w, "-k", "sync", "-b", addr,
                                               "--log-level", "warning", "app:app"],
                      port, WSGI_DIR, env))
    port, addr = bind()
    out.append(Server("gunicorn -w 2 (sync)", [str(peers / "gunicorn"), "-w", w, "-b", addr,
                                               "--log-level", "warning", "app:app"],
                      port, WSGI_DIR, env))
    for server in out:
        server.name = server.name.replace("-w 2", f"-w {workers}")
    return out


# -------------------------------------------------------------------------------------- respawn


def probe_pids(port: int, fanout: int = 4, timeout: float = 1.0) -> set[int]:
    """Pids answering ``fanout`` concurrent ``GET /pid`` on fresh connections."""
    socks = []
    for _ in range(fanout):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            socks.append(s)
        except OSError:
            continue
    found = set()
    for s in socks:
        with s:
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except OSError:
                pass
            body = data.partition(b"\r\n\r\n")[2].strip()
            if data.startswith(b"HTTP/1.1 200") and body.isdigit():
                found.add(int(body))
    return found


def wait_workers(server: Server, count: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if len(pids) == count:
            return pids
        time.sleep(0.02)
    raise RuntimeError(f"{server.name}: {count} workers not up")


def respawn_ms(server: Server, workers: int, trials: int, settle: float) -> list[float]:
    """ms from kill -9 of one worker until a new pid answers, ``trials`` times."""
    seen: set[int] = {server.pid}
    figures = []
    for _ in range(trials):
        wait_workers(server, workers)
        time.sleep(settle)  # workers older than tricorn's --respawn-backoff-uptime (1 s)
        pids = wait_workers(server, workers)
        seen.update(pids)
        victim = min(pids)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        deadline = killed + 10
        while time.monotonic() < deadline:
            fresh = probe_pids(server.port) - seen
            if fresh:
                figures.append((time.monotonic() - killed) * 1000)
                seen.update(fresh)
                break
        else:
            raise RuntimeError(f"{server.name}: no replacement answered within 10 s")
    return figures


# ------------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--respawn-trials", type=int, default=5)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/tricorn-bench-venv"))
    parser.add_argument("--tricorn-bin", type=Path, default=Path(sys.executable).parent / "tricorn")
    parser.add_argument("--out", type=Path, default=None, help="write raw results as JSON")
    parser.add_argument("--only", nargs="*", default=None, help="workload names to run")
    parser.add_argument("--no-respawn", action="store_true", help="skip the respawn measurement")
    parser.add_argument("--server-cpu", default=None,
                        help="pin each deployment (master and workers) to these CPUs (taskset -c)")
    parser.add_argument("--wrk-cpu", default=None, help="pin wrk to these CPUs")
    args = parser.parse_args()

    wrk_bin = common.ensure_wrk()
    peers = common.ensure_venv(args.venv, PEERS, ["gunicorn", "uvicorn", "uvicorn_worker", "uvloop",
                                                   "httptools"])
    has_asgi = gunicorn_has_asgi(peers)
    servers = deployments(args.tricorn_bin, peers, args.workers, has_asgi)
    names = [s.name for s in servers]
    unavailable = [] if has_asgi else [f"gunicorn -w {args.workers} -k asgi"]
    if unavailable:
        print("note: this gunicorn has no -k asgi worker: unavailable", file=sys.stderr)
    chosen = [w for w in WORKLOADS if args.only is None or w in args.only]
    cells: dict[tuple[str, str], Cell] = {}
    started = time.time()
    load_before = os.getloadavg()
    for round_no in range(args.rounds):
        shift = round_no % len(servers)
        order = servers[shift:] + servers[:shift]
        for server in order:
            server.start(cpu=args.server_cpu)
        try:
            for workload in chosen:
                for server in order:
                    url = f"http://127.0.0.1:{server.port}{WORKLOADS[workload]}"
                    common.run_wrk(wrk_bin, url, CONNECTIONS, 1, (), args.wrk_cpu,
                                   latency=False)  # warm-up
                    pids = server.pids()
                    before = common.cpu_ticks(pids)
                    result = common.run_wrk(wrk_bin, url, CONNECTIONS, args.duration, (),
                                            args.wrk_cpu)
                    ticks = common.cpu_ticks(pids) - before
                    if result["requests"]:
                        result["cpu_us_per_req"] = (ticks / common.CLK_TCK * 1e6
                                                    / float(result["requests"]))
                    cells.setdefault((server.name, workload), Cell()).runs.append(result)
                    print(f"round {round_no + 1} {workload:17} {server.name:48} "
                          f"{result['rps']:>9.0f} req/s  p99 {result.get('p99_ms', 0):7.2f} ms  "
                          f"cpu {result.get('cpu_us_per_req', 0):6.1f} us/req"
                          + (f"  [{result['errors']}]" if "errors" in result else ""),
                          file=sys.stderr, flush=True)
        finally:
            for server in order:
                server.stop()

    respawn: dict[str, list[float]] = {}
    if not args.no_respawn:
        for server in servers:
            if "sync" not in server.name:
                continue
            server.start()
            try:
                respawn[server.name] = respawn_ms(server, args.workers, args.respawn_trials, 1.5)
            finally:
                server.stop()
            print(f"respawn {server.name}: "
                  + ", ".join(f"{v:.1f}" for v in respawn[server.name]) + " ms",
                  file=sys.stderr, flush=True)

    versions = {
        **common.pip_versions(peers / "python",
                              ["gunicorn", "uvicorn", "uvicorn-worker", "uvloop", "httptools"]),
        **{f"{k} (tricorn env)": v for k, v in common.pip_versions(
            sys.executable, ["tricorn-arbiter", "tricorn-asgi", "tricorn-wsgi", "tricorn-core",
                             "uvloop"]).items()},
        "wrk": common.wrk_version(wrk_bin),
    }
    report = {
        **common.report_header(started, load_before, versions),
        "rounds": args.rounds, "duration": args.duration, "workers": args.workers,
        "server_cpu": args.server_cpu, "wrk_cpu": args.wrk_cpu,
        "unavailable": unavailable,
        "results": {f"{s}|{w}": c.runs for (s, w), c in cells.items()},
        "respawn_ms": respawn,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    print(render(report, names, chosen, cells, respawn, unavailable))
    return 0


def render(report: dict[str, object], names: list[str], workloads: list[str],
           cells: dict[tuple[str, str], Cell], respawn: dict[str, list[float]],
           unavailable: list[str]) -> str:
    machine = report["machine"]
    assert isinstance(machine, dict)
    lines = [f"{report['rounds']} interleaved rounds x {report['duration']} s per measurement, "
             f"wrk -t1 -c{CONNECTIONS}, 127.0.0.1, medians; CPU = user+system of master and workers "
             f"per request; {machine['cpus']} CPUs, "
             + (f"each deployment pinned to CPU {report['server_cpu']} (master and workers), "
                f"wrk to CPU {report['wrk_cpu']}" if report.get("server_cpu") is not None
                else "nothing pinned")
             + "; load average before "
             f"{machine['load_before'][0]:.2f}, after {machine['load_after'][0]:.2f}.", ""]
    rows = []
    for workload in workloads:
        for name in names:
            cell = cells.get((name, workload))
            if cell is None:
                continue
            errs = cell.total("socket_errors") + cell.total("non_2xx")
            rows.append([workload, name, f"{cell.median('rps'):,.0f}",
                         f"{cell.median('p99_ms'):.2f}", f"{cell.median('cpu_us_per_req'):.1f}",
                         f"{errs:.0f}"])
        for name in unavailable:
            rows.append([workload, name, "unavailable", "", "", ""])
    lines.append(common.markdown_table(
        ["workload", "deployment", "req/s", "p99 ms", "CPU us/req", "errors"], rows,
        [False, False, True, True, True, True]))
    lines.append("")
    rows = []
    for workload in workloads:
        for mine, peer in PAIRS:
            mine = mine.replace("-w 2", f"-w {report['workers']}")
            peer = peer.replace("-w 2", f"-w {report['workers']}")
            a, b = cells.get((mine, workload)), cells.get((peer, workload))
            if a is None or b is None:
                rows.append([workload, f"{mine} / {peer}", "unavailable", ""])
                continue
            rows.append([workload, f"{mine} / {peer}", common.ratio(a.median("rps"), b.median("rps")),
                         common.ratio(b.median("cpu_us_per_req"), a.median("cpu_us_per_req"))])
    lines.append(common.markdown_table(
        ["workload", "tricorn / peer", "req/s ratio", "CPU efficiency (peer CPU/req ÷ ours)"], rows,
        [False, False, True, True]))
    if respawn:
        lines.append("")
        lines.append(common.markdown_table(
            ["deployment", "respawn after kill -9: median ms", "min ms", "max ms", "all (ms)"],
            [[name, f"{statistics.median(v):.1f}", f"{min(v):.1f}", f"{max(v):.1f}",
              ", ".join(f"{x:.1f}" for x in v)] for name, v in respawn.items()],
            [False, True, True, True, False]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
