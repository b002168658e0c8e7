#!/usr/bin/env python3
"""Benchmark tricorn-asgi against Uvicorn, Gunicorn's ASGI worker and Granian on one pinned core.

    python benchmarks/asgi/run.py                 # 3 interleaved rounds, 4 s per measurement
    python benchmarks/asgi/run.py --rounds 5 --duration 8 --out results.json

What it does (every step bounded in time):
- installs wrk with apt-get when it is missing;
- creates a separate virtual environment for the peer servers (``--venv``, default
  /tmp/tricorn-asgi-bench-venv; never requirements-dev) with ``uvicorn[standard]`` (httptools, uvloop),
  gunicorn and granian; tricorn-asgi runs from the Python running this script;
- serves benchmarks/asgi/app.py (one raw ASGI app) with each server as one process pinned to
  ``--server-cpu`` (taskset), and drives it with ``wrk -t1`` pinned to ``--client-cpu``, loopback:
  hello keep-alive (-c64), hello with ``Connection: close`` (-c64), a 64 KiB response (-c64), a
  16 KiB POST echo (-c64), and an ``asyncio.sleep(0.01)`` endpoint at -c256;
- interleaves: every round starts all servers, then runs every workload on every server (server
  order rotated per round), after a 1 s warm-up each; then stops the servers;
- reports per server and workload the median over rounds of req/s, of wrk's p99 latency, of the
  server's CPU time per request (user+system from /proc: robust when the machine is shared), and of
  its peak RSS (VmHWM of the serving process) — plus ratios to Uvicorn. Markdown on stdout, JSON
  with every raw figure in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import (  # noqa: E402
    CLK_TCK,
    Cell,
    Server,
    cells_from_report,
    ensure_venv,
    ensure_wrk,
    free_port,
    markdown_table,
    paired_ratio,
    pip_versions,
    ratio,
    report_header,
    run_wrk,
)

HERE = Path(__file__).resolve().parent
PEERS = ["uvicorn[standard]", "gunicorn", "granian"]
WORKLOADS = {
    # name: (path, connections, extra wrk args)
    "hello keep-alive": ("/", 64, []),
    "hello Connection: close": ("/", 64, ["-H", "Connection: close"]),
    "64 KiB response": ("/64k", 64, []),
    "16 KiB POST echo": ("/echo", 64, ["-s", str(HERE / "post16k.lua")]),
    "sleep(0.01) at 256 conns": ("/sleep", 256, []),
}


def versions(bin_dir: Path) -> dict[str, str]:
    found = pip_versions(bin_dir / "python", ["uvicorn", "gunicorn", "granian", "uvloop", "httptools"])
    for name, version in pip_versions(sys.executable, ["tricorn-asgi", "tricorn-core", "uvloop"]).items():
        found[f"{name} (tricorn env)"] = version
    return found


def servers(bin_dir: Path) -> list[Server]:
    out = []
    port = free_port()
    out.append(Server("tricorn-asgi", [sys.executable, "-m", "tricorn.asgi", "app:app",
                                       "--host", "127.0.0.1", "--port", str(port), "--loop",
                                       "uvloop", "--log-level", "warning"], port, HERE))
    port = free_port()
    out.append(Server("uvicorn", [str(bin_dir / "uvicorn"), "app:app", "--host", "127.0.0.1",
                                  "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                                  "--no-access-log", "--log-level", "warning"], port, HERE))
    port = free_port()
    out.append(Server("gunicorn -k asgi", [str(bin_dir / "gunicorn"), "-k", "asgi", "-w", "1",
                                           "--asgi-loop", "uvloop", "-b", f"127.0.0.1:{port}",
                                           "--log-level", "warning", "app:app"], port, HERE))
    port = free_port()
    out.append(Server("granian", [str(bin_dir / "granian"), "--interface", "asgi", "--host",
                                  "127.0.0.1", "--port", str(port), "--workers", "1",
                                  "--runtime-threads", "1", "--loop", "uvloop",
                                  "--no-access-log", "--log-level", "warning", "app:app"], port, HERE))
    return out


def gunicorn_has_asgi(bin_dir: Path) -> bool:
    result = subprocess.run([str(bin_dir / "gunicorn"), "--help"], capture_output=True, text=True,
                            timeout=60)
    return "--asgi-loop" in result.stdout


def wrk(wrk_bin: str, cpu: int, server: Server, workload: str, duration: int,
        latency: bool = True) -> dict[str, float | str]:
    path, conns, extra = WORKLOADS[workload]
    return run_wrk(wrk_bin, f"http://127.0.0.1:{server.port}{path}", conns, duration, extra, cpu,
                   latency)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/tricorn-asgi-bench-venv"))
    parser.add_argument("--out", type=Path, default=None, help="write raw results as JSON")
    parser.add_argument("--only", nargs="*", default=None, help="workload names to run")
    parser.add_argument("--render", type=Path, default=None,
                        help="only print the tables of a JSON file written by --out")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.render.read_text())
        cells, names, workloads = cells_from_report(report)
        print(render(report, names, workloads, cells, report.get("peak_rss_kib", {})))
        return 0

    wrk_bin = ensure_wrk()
    bin_dir = ensure_venv(args.venv, PEERS, ["uvicorn", "gunicorn", "granian"])
    chosen = [w for w in WORKLOADS if args.only is None or w in args.only]
    all_servers = servers(bin_dir)
    if not gunicorn_has_asgi(bin_dir):
        print("note: this gunicorn has no -k asgi worker; skipped", file=sys.stderr)
        all_servers = [s for s in all_servers if not s.name.startswith("gunicorn")]
    cells: dict[tuple[str, str], Cell] = {}
    rss: dict[str, list[int]] = {s.name: [] for s in all_servers}
    started = time.time()
    load_before = os.getloadavg()
    for round_no in range(args.rounds):
        order = all_servers[round_no % len(all_servers):] + all_servers[:round_no % len(all_servers)]
        for server in order:
            server.start(args.server_cpu)
        try:
            for workload in chosen:
                for server in order:
                    wrk(wrk_bin, args.client_cpu, server, workload, 1, latency=False)  # warm-up
                    before = server.cpu_ticks()
                    result = wrk(wrk_bin, args.client_cpu, server, workload, args.duration)
                    ticks = server.cpu_ticks() - before
                    if result["requests"]:
                        result["cpu_us_per_req"] = ticks / CLK_TCK * 1e6 / float(result["requests"])
                    cells.setdefault((server.name, workload), Cell()).runs.append(result)
                    print(f"round {round_no + 1} {workload:26} {server.name:17} "
                          f"{result['rps']:>9.0f} req/s  p99 {result.get('p99_ms', 0):7.2f} ms  "
                          f"cpu {result.get('cpu_us_per_req', 0):6.1f} us/req"
                          + (f"  [{result['errors']}]" if "errors" in result else ""),
                          file=sys.stderr)
            for server in order:
                rss[server.name].append(server.peak_rss_kib())
        finally:
            for server in order:
                server.stop()

    names = [s.name for s in all_servers]
    report = {
        **report_header(started, load_before, versions(bin_dir)),
        "rounds": args.rounds, "duration": args.duration,
        "results": {f"{s}|{w}": c.runs for (s, w), c in cells.items()},
        "peak_rss_kib": rss,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    print(render(report, names, chosen, cells, rss))
    return 0


def render(report: dict[str, object], names: list[str], workloads: list[str],
           cells: dict[tuple[str, str], Cell], rss: dict[str, list[int]]) -> str:
    rows = []
    for workload in workloads:
        base = cells.get(("uvicorn", workload))
        base_rps = base.median("rps") if base else float("nan")
        for name in names:
            cell = cells.get((name, workload))
            if cell is None:
                continue
            rps = cell.median("rps")
            rows.append([workload, name, f"{rps:,.0f}", ratio(rps, base_rps),
                         paired_ratio(cell, base, "rps"), f"{cell.median('p99_ms'):.2f}",
                         f"{cell.median('cpu_us_per_req'):.1f}",
                         paired_ratio(cell, base, "cpu_us_per_req", invert=True)])
    lines = [f"Rounds: {report['rounds']} x {report['duration']} s per measurement; "
             "medians; vs uvicorn = req/s / uvicorn's, of the medians and the median of the "
             "per-round ratios (each round measures both a few seconds apart); CPU vs uvicorn = "
             "uvicorn's CPU per request / this one's, per round.", ""]
    lines.append(markdown_table(["workload", "server", "req/s", "vs uvicorn", "per round", "p99 ms",
                                 "CPU us/req", "CPU vs uvicorn"],
                                rows, [False, False, True, True, True, True, True, True]))
    lines.append("")
    lines.append(markdown_table(
        ["server", "peak RSS (MiB, median of rounds)"],
        [[name, f"{statistics.median(rss.get(name) or [0]) / 1024:.1f}"] for name in names]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
