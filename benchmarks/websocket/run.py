#!/usr/bin/env python3
"""Benchmark tricorn-asgi's WebSockets against Uvicorn (websockets-sansio) on one pinned core.

    python benchmarks/websocket/run.py                  # 3 interleaved rounds, 4 s per measurement
    python benchmarks/websocket/run.py --rounds 5 --duration 6 --out results.json

What it does (every step bounded in time):
- creates a separate virtual environment for the peer (``--venv``, default
  /tmp/tricorn-asgi-bench-venv, shared with benchmarks/asgi; never requirements-dev) with
  ``uvicorn[standard]`` (httptools, uvloop) and ``websockets``; tricorn-asgi runs from the Python
  running this script;
- serves benchmarks/websocket/app.py (one raw ASGI echo app) with each server as one process
  pinned to ``--server-cpu`` (taskset): tricorn-asgi with uvloop; Uvicorn with uvloop, httptools and
  ``--ws websockets-sansio``; both with keepalive pings off for the run (interval 3600 s);
- drives it with benchmarks/websocket/client.py (raw sockets, pre-masked frames, epoll: see its
  docstring) in ``--client-procs`` processes pinned to ``--client-cpu``: ``--connections`` (100)
  WebSocket connections in all, each keeping ``--window`` binary messages in flight (a closed loop:
  an echo received sends the next message). The client offers no extension, so permessage-deflate
  is off. Workloads: 64 B and 64 KiB messages;
- interleaves: every round starts both servers, then runs every workload on every server (server
  order rotated per round), each measurement after a 1 s warm-up on the same connections; then stops
  the servers;
- reports per server and workload the median over rounds of messages/s (echoes received per
  second), of the server's CPU time per message (user and system from /proc: robust when the
  machine is shared) and of the client's CPU use (the share of its core it needed: well under 100%
  means the client was not the bottleneck) -- plus ratios to Uvicorn. Markdown on stdout, JSON with
  every raw figure in ``--out``.

``--floor`` adds two servers, measured in the same rounds and the same way. ``c-floor``:
benchmarks/websocket/floor.c, a minimal single-threaded C echo server (epoll, one read and one writev
per batch of frames, unmasking in place, no copies; compiled on demand with gcc into
/tmp/tricorn-ws-floor). It is the kernel's floor: the loopback TCP cost per message is the same for
every server, so no server can go below c-floor's CPU per message, and the gap to it is what a
server's own work costs. ``asgi-floor``: benchmarks/websocket/asgi_floor.py, run with the same Python
as tricorn-asgi: a minimal ASGI server on asyncio + uvloop running app.py (a BufferedProtocol reading
into tricorn's C frame parser, a deque and a future per connection, the app in a Task, frames written
with transport.write; no validation, flow control, timers or logging). It is the floor for an ASGI
server on asyncio + uvloop running this app: the event-loop and task-switch cost per message that
every such server pays; the gap between it and tricorn-asgi is what tricorn's own per-message work
costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    clean_env,
    ensure_venv,
    free_port,
    markdown_table,
    paired_ratio,
    pip_versions,
    ratio,
    report_header,
    sh,
)

HERE = Path(__file__).resolve().parent
PEERS = ["uvicorn[standard]", "websockets"]
WORKLOADS = {"64 B": 64, "64 KiB": 65536}
PING_OFF = ["--ws-ping-interval", "3600", "--ws-ping-timeout", "3600"]
FLOOR_SOURCE = HERE / "floor.c"
FLOOR_BINARY = Path("/tmp/tricorn-ws-floor/floor")


def versions(bin_dir: Path, floor: bool = False) -> dict[str, str]:
    found = pip_versions(bin_dir / "python", ["uvicorn", "websockets", "uvloop", "httptools"])
    for name, version in pip_versions(sys.executable, ["tricorn-asgi", "tricorn-core", "uvloop"]).items():
        found[f"{name} (tricorn env)"] = version
    if floor:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, timeout=30).stdout
        found["gcc (c-floor)"] = out.split("\n")[0].strip()
    return found


def build_floor() -> Path:
    """The c-floor binary, compiled with gcc -O2 when it is missing or older than floor.c."""
    binary = FLOOR_BINARY
    if binary.exists() and binary.stat().st_mtime >= FLOOR_SOURCE.stat().st_mtime:
        return binary
    if shutil.which("gcc") is None:
        raise SystemExit("--floor needs gcc")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f"{binary.name}.{os.getpid()}")
    print(f"compiling {FLOOR_SOURCE.name} into {binary} ...", file=sys.stderr)
    try:
        sh("gcc", "-O2", "-Wall", "-Wextra", "-o", str(tmp), str(FLOOR_SOURCE), timeout=120)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"compiling {FLOOR_SOURCE} failed:\n{exc.stderr}") from exc
    tmp.replace(binary)  # atomic: a concurrent run never sees half a binary
    return binary


def servers(bin_dir: Path, floor: Path | None = None) -> list[Server]:
    env = clean_env()
    port = free_port()
    tricorn = Server("tricorn-asgi", [sys.executable, "-m", "tricorn.asgi", "app:app",
                                      "--host", "127.0.0.1", "--port", str(port), "--loop",
                                      "uvloop", "--log-level", "warning", *PING_OFF],
                     port, HERE, env)
    port = free_port()
    uvicorn = Server("uvicorn", [str(bin_dir / "uvicorn"), "app:app", "--host", "127.0.0.1",
                                 "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                                 "--ws", "websockets-sansio", "--no-access-log", "--log-level",
                                 "warning", *PING_OFF], port, HERE, env)
    if floor is None:
        return [tricorn, uvicorn]
    port = free_port()
    c_floor = Server("c-floor", [str(floor), "--host", "127.0.0.1", "--port", str(port)], port, HERE,
                     env)
    port = free_port()
    asgi_floor = Server("asgi-floor", [sys.executable, str(HERE / "asgi_floor.py"), "--host",
                                       "127.0.0.1", "--port", str(port)], port, HERE, env)
    return [tricorn, uvicorn, c_floor, asgi_floor]


def stat_ticks(pids: list[int]) -> tuple[int, int]:
    """(user, system) clock ticks of these processes."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def measure(server: Server, size: int, args: argparse.Namespace, duration: float,
            warmup: float) -> dict[str, float | str]:
    """One run of the client processes against `server`; server CPU over the counted window."""
    procs = max(1, args.client_procs)
    per = [args.connections // procs + (1 if i < args.connections % procs else 0)
           for i in range(procs)]
    start_at = time.time() + 1.5 + 0.02 * args.connections  # time to connect and validate
    clients = []
    for conns in per:
        argv = [sys.executable, str(HERE / "client.py"), "--port", str(server.port),
                "--connections", str(conns), "--size", str(size), "--window", str(args.window),
                "--start-at", f"{start_at:.3f}", "--warmup", str(warmup),
                "--duration", str(duration)]
        if args.client_cpu is not None:
            argv = ["taskset", "-c", str(args.client_cpu), *argv]
        clients.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True))
    # sample the server's CPU over the counted window (the clients share the same wall clock)
    before = after = (0, 0)
    t_count = start_at + warmup
    while time.time() < t_count:
        time.sleep(min(0.01, max(0.0, t_count - time.time())))
    before = stat_ticks(server.pids())
    t_end = t_count + duration
    while time.time() < t_end:
        time.sleep(min(0.01, max(0.0, t_end - time.time())))
    after = stat_ticks(server.pids())
    messages = 0.0
    seconds: list[float] = []
    client_cpu = 0.0
    errors: list[str] = []
    for proc in clients:
        try:
            out, err = proc.communicate(timeout=duration + warmup + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=10)
            errors.append("client timed out")
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            errors.append(f"client output: {out[-200:]!r} {err[-300:]!r}")
            continue
        messages += result["messages"]
        seconds.append(result["seconds"])
        client_cpu += result["cpu_s"]
        errors += result["errors"]
    secs = statistics.mean(seconds) if seconds else duration
    user = (after[0] - before[0]) / CLK_TCK
    system = (after[1] - before[1]) / CLK_TCK
    result_: dict[str, float | str] = {
        "messages": messages, "seconds": secs,
        "msg_per_s": messages / secs if secs else 0.0,
        "server_user_s": user, "server_sys_s": system,
        "client_cpu_share": client_cpu / secs if secs else 0.0,
    }
    if messages:
        result_["server_us_per_msg"] = (user + system) * 1e6 / messages
        result_["server_user_us_per_msg"] = user * 1e6 / messages
    if errors:
        result_["errors"] = "; ".join(errors[:5])
    return result_


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--window", type=int, default=1, help="messages in flight per connection")
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/tricorn-asgi-bench-venv"))
    parser.add_argument("--out", type=Path, default=None, help="write raw results as JSON")
    parser.add_argument("--only", nargs="*", default=None, choices=list(WORKLOADS),
                        help="workloads to run")
    parser.add_argument("--servers", nargs="*", default=None, help="server names to run")
    parser.add_argument("--floor", action="store_true",
                        help="also run c-floor (floor.c, a minimal C echo server: the kernel's "
                        "floor) and asgi-floor (asgi_floor.py, a minimal ASGI server on uvloop)")
    parser.add_argument("--render", type=Path, default=None,
                        help="only print the tables of a JSON file written by --out")
    args = parser.parse_args()
    if args.render:
        return render_file(args.render)

    bin_dir = ensure_venv(args.venv, PEERS, ["uvicorn", "websockets", "uvloop", "httptools"])
    chosen = [w for w in WORKLOADS if args.only is None or w in args.only]
    floor = build_floor() if args.floor else None
    all_servers = [s for s in servers(bin_dir, floor)
                   if args.servers is None or s.name in args.servers]
    cells: dict[tuple[str, str], Cell] = {}
    started = time.time()
    load_before = os.getloadavg()
    for round_no in range(args.rounds):
        shift = round_no % len(all_servers)
        order = all_servers[shift:] + all_servers[:shift]
        for server in order:
            server.start(args.server_cpu)
        try:
            for workload in chosen:
                for server in order:
                    result = measure(server, WORKLOADS[workload], args, args.duration, 1.0)
                    cells.setdefault((server.name, workload), Cell()).runs.append(result)
                    print(f"round {round_no + 1} {workload:7} {server.name:13} "
                          f"{result['msg_per_s']:>9.0f} msg/s  server "
                          f"{result.get('server_us_per_msg', 0):6.1f} us/msg "
                          f"(user {result.get('server_user_us_per_msg', 0):5.1f})  client core "
                          f"{float(result['client_cpu_share']) * 100:3.0f}%"
                          + (f"  [{result['errors']}]" if "errors" in result else ""),
                          file=sys.stderr)
        finally:
            for server in order:
                server.stop()

    names = [s.name for s in all_servers]
    report = {
        **report_header(started, load_before, versions(bin_dir, floor is not None)),
        "rounds": args.rounds, "duration": args.duration, "connections": args.connections,
        "window": args.window, "client_procs": args.client_procs,
        "results": {f"{s}|{w}": c.runs for (s, w), c in cells.items()},
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    print(render(report, names, chosen, cells))
    return 0


def render_file(path: Path) -> int:
    report = json.loads(path.read_text())
    cells, names, workloads = cells_from_report(report)
    workloads.sort(key=lambda w: list(WORKLOADS).index(w) if w in WORKLOADS else 99)
    print(render(report, names, workloads, cells))
    return 0


def render(report: dict[str, object], names: list[str], workloads: list[str],
           cells: dict[tuple[str, str], Cell]) -> str:
    rows = []
    for workload in workloads:
        base = cells.get(("uvicorn", workload))
        base_rate = base.median("msg_per_s") if base else float("nan")
        base_cpu = base.median("server_us_per_msg") if base else float("nan")
        for name in names:
            cell = cells.get((name, workload))
            if cell is None:
                continue
            rate = cell.median("msg_per_s")
            cpu = cell.median("server_us_per_msg")
            errors = sum(1 for r in cell.runs if "errors" in r)
            rows.append([workload, name, f"{rate:,.0f}", ratio(rate, base_rate),
                         paired_ratio(cell, base, "msg_per_s"), f"{cpu:.1f}",
                         f"{cell.median('server_user_us_per_msg'):.1f}",
                         ratio(base_cpu, cpu), paired_ratio(cell, base, "server_us_per_msg", True),
                         f"{cell.median('client_cpu_share') * 100:.0f}%", errors])
    lines = [f"Rounds: {report['rounds']} x {report['duration']} s per measurement, "
             f"{report['connections']} connections, {report['window']} message(s) in flight each, "
             f"{report['client_procs']} client process(es); medians; ratios vs uvicorn "
             "(messages/s: higher is better; server CPU: uvicorn's / this one's): of the medians, "
             "and the median of the per-round ratios.", ""]
    lines.append(markdown_table(
        ["message", "server", "messages/s", "vs uvicorn", "per round", "server CPU us/msg",
         "of which user", "CPU vs uvicorn", "per round", "client core busy", "runs with errors"],
        rows, [False, False, *[True] * 9]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
