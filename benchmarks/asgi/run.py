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
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

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
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(*args: str, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=True, text=True, timeout=timeout,
                          capture_output=True, **kwargs)  # type: ignore[call-overload]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk with apt-get ...", file=sys.stderr)
    sh("apt-get", "update", "-q", timeout=300)
    sh("apt-get", "install", "-y", "-q", "wrk", timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not available and could not be installed")
    return found


def ensure_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} with {', '.join(PEERS)} ...", file=sys.stderr)
        sh(sys.executable, "-m", "venv", str(path))
        sh(str(python), "-m", "pip", "install", "-q", *PEERS, timeout=900)
    return path / "bin"


def versions(bin_dir: Path) -> dict[str, str]:
    out = sh(str(bin_dir / "python"), "-m", "pip", "list", "--format=json").stdout
    wanted = {"uvicorn", "gunicorn", "granian", "uvloop", "httptools"}
    found = {p["name"].lower(): p["version"] for p in json.loads(out) if p["name"].lower() in wanted}
    mine = subprocess.run([sys.executable, "-m", "pip", "list", "--format=json"],
                          capture_output=True, text=True, timeout=60).stdout
    for p in json.loads(mine or "[]"):
        if p["name"].lower() in ("tricorn-asgi", "tricorn-core", "uvloop"):
            found[f"{p['name'].lower()} (tricorn env)"] = p["version"]
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self, cpu: int) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *self.argv], cwd=HERE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def pids(self) -> list[int]:
        """The process and its descendants (gunicorn and granian fork workers)."""
        assert self.proc is not None
        found = [self.proc.pid]
        queue = [self.proc.pid]
        while queue:
            pid = queue.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for child in children:
                found.append(int(child))
                queue.append(int(child))
        return found

    def cpu_ticks(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total

    def peak_rss_kib(self) -> int:
        """VmHWM of the largest process of the tree (the one serving)."""
        best = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        best = max(best, int(line.split()[1]))
            except OSError:
                continue
        return best

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def servers(bin_dir: Path) -> list[Server]:
    out = []
    port = free_port()
    out.append(Server("tricorn-asgi", [sys.executable, "-m", "tricorn.asgi", "app:app",
                                       "--host", "127.0.0.1", "--port", str(port), "--loop",
                                       "uvloop", "--log-level", "warning"], port))
    port = free_port()
    out.append(Server("uvicorn", [str(bin_dir / "uvicorn"), "app:app", "--host", "127.0.0.1",
                                  "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                                  "--no-access-log", "--log-level", "warning"], port))
    port = free_port()
    out.append(Server("gunicorn -k asgi", [str(bin_dir / "gunicorn"), "-k", "asgi", "-w", "1",
                                           "--asgi-loop", "uvloop", "-b", f"127.0.0.1:{port}",
                                           "--log-level", "warning", "app:app"], port))
    port = free_port()
    out.append(Server("granian", [str(bin_dir / "granian"), "--interface", "asgi", "--host",
                                  "127.0.0.1", "--port", str(port), "--workers", "1",
                                  "--runtime-threads", "1", "--loop", "uvloop",
                                  "--no-access-log", "--log-level", "warning", "app:app"], port))
    return out


def gunicorn_has_asgi(bin_dir: Path) -> bool:
    result = subprocess.run([str(bin_dir / "gunicorn"), "--help"], capture_output=True, text=True,
                            timeout=60)
    return "--asgi-loop" in result.stdout


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_REQS = re.compile(r"(\d+) requests in")
_ERR = re.compile(r"Socket errors: (.*)|Non-2xx or 3xx responses: (\d+)")


def wrk(wrk_bin: str, cpu: int, server: Server, workload: str, duration: int,
        latency: bool = True) -> dict[str, float | str]:
    path, conns, extra = WORKLOADS[workload]
    args = ["taskset", "-c", str(cpu), wrk_bin, "-t1", f"-c{conns}", f"-d{duration}s",
            "--timeout", "5s", *extra, f"http://127.0.0.1:{server.port}{path}"]
    if latency:
        args.insert(4, "--latency")
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = _RPS.search(out)
    reqs = _REQS.search(out)
    p99 = _P99.search(out)
    result: dict[str, float | str] = {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": float(reqs.group(1)) if reqs else 0.0,
    }
    if p99:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        result["p99_ms"] = float(p99.group(1)) * scale
    errors = "; ".join(m.group(0) for m in _ERR.finditer(out))
    if errors:
        result["errors"] = errors
    return result


@dataclass
class Cell:
    runs: list[dict[str, float | str]] = field(default_factory=list)

    def median(self, key: str) -> float:
        values = [float(r[key]) for r in self.runs if key in r]
        return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per measurement")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/tricorn-asgi-bench-venv"))
    parser.add_argument("--out", type=Path, default=None, help="write raw results as JSON")
    parser.add_argument("--only", nargs="*", default=None, help="workload names to run")
    args = parser.parse_args()

    wrk_bin = ensure_wrk()
    bin_dir = ensure_venv(args.venv)
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
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_before": load_before, "load_after": os.getloadavg()},
        "versions": versions(bin_dir),
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
    lines = [f"Rounds: {report['rounds']} x {report['duration']} s per measurement; "
             f"medians; ratio = req/s / uvicorn's.", ""]
    lines.append("| workload | server | req/s | vs uvicorn | p99 ms | CPU us/req |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for workload in workloads:
        base = cells.get(("uvicorn", workload))
        base_rps = base.median("rps") if base else float("nan")
        for name in names:
            cell = cells.get((name, workload))
            if cell is None:
                continue
            rps = cell.median("rps")
            ratio = f"{rps / base_rps:.2f}x" if base_rps else "n/a"
            lines.append(f"| {workload} | {name} | {rps:,.0f} | {ratio} | "
                         f"{cell.median('p99_ms'):.2f} | {cell.median('cpu_us_per_req'):.1f} |")
    lines += ["", "| server | peak RSS (MiB, median of rounds) |", "|---|---:|"]
    for name in names:
        values = rss.get(name) or [0]
        lines.append(f"| {name} | {statistics.median(values) / 1024:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
