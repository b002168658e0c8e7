"""Machinery shared by the benchmarks (benchmarks/asgi/run.py, benchmarks/wsgi/bench.py,
benchmarks/arbiter/run.py): wrk installation and runs, the peer virtualenv, free ports, server
processes (start, readiness, /proc CPU time and RSS of the process tree, stop) and Markdown rendering
of medians and ratios.

The scripts import it as ``common`` after putting benchmarks/ on ``sys.path`` (they are run as
files, not as a package).
"""

from __future__ import annotations

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(*args: str, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=True, text=True, timeout=timeout,
                          capture_output=True, **kwargs)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------- setup


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get when it is missing."""
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


def ensure_venv(path: Path, packages: Sequence[str], probe: Sequence[str] = ()) -> Path:
    """A separate virtualenv for the peer servers (never the dev requirements); returns its bin/.

    Created when missing; ``packages`` are installed when it is created or when importing any of the
    ``probe`` modules fails (an older venv made by another benchmark may lack some peers).
    """
    python = path / "bin" / "python"
    fresh = not python.exists()
    if fresh:
        print(f"creating {path} ...", file=sys.stderr)
        sh(sys.executable, "-m", "venv", str(path))
    missing = bool(probe) and subprocess.run(
        [str(python), "-c", "import " + ", ".join(probe)], capture_output=True, timeout=120,
    ).returncode != 0
    if fresh or missing:
        print(f"installing {', '.join(packages)} into {path} ...", file=sys.stderr)
        sh(str(python), "-m", "pip", "install", "-q", *packages, timeout=900)
    return path / "bin"


def pip_versions(python: str | Path, wanted: Sequence[str]) -> dict[str, str]:
    """Installed versions of the ``wanted`` distributions (lower-case names) in that Python."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True,
                         text=True, timeout=120).stdout
    names = {w.lower() for w in wanted}
    return {p["name"].lower(): p["version"] for p in json.loads(out or "[]")
            if p["name"].lower() in names}


def wrk_version(wrk_bin: str = "wrk") -> str:
    out = subprocess.run([wrk_bin, "-v"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).split("\n")[0].strip()


# -------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0,
               interval: float = 0.05, name: str = "server") -> None:
    """Until GET / on 127.0.0.1:port answers 200, the process exits, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{name} did not start")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found = [pid]
    queue = [pid]
    while queue:
        for child in children(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


def cpu_ticks(pids: Sequence[int]) -> int:
    """user + system clock ticks of these processes (CLK_TCK per second)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def peak_rss_kib(pids: Sequence[int]) -> int:
    """The largest VmHWM among these processes."""
    best = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best


@dataclass
class Server:
    """One server command (a master and its workers, or a single process) on 127.0.0.1:port.

    ``cpu`` pins it with taskset; None (the multi-process benchmarks) leaves it to the scheduler.
    It runs in its own session, so stop() signals the whole process group.
    """

    name: str
    argv: list[str]
    port: int
    cwd: Path | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self, cpu: int | str | None = None, timeout: float = 20.0,
              interval: float = 0.1) -> None:
        argv = self.argv if cpu is None else ["taskset", "-c", str(cpu), *self.argv]
        self.proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        try:
            wait_ready(self.port, self.proc, timeout, interval, self.name)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        """The process and its descendants (pre-fork servers fork workers)."""
        return process_tree(self.pid)

    def worker_pids(self) -> list[int]:
        """The master's direct children."""
        return children(self.pid)

    def cpu_ticks(self) -> int:
        return cpu_ticks(self.pids())

    def peak_rss_kib(self) -> int:
        """VmHWM of the largest process of the tree (the one serving)."""
        return peak_rss_kib(self.pids())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def clean_env() -> dict[str, str]:
    """The environment without TRICORN_* / GUNICORN_* settings that would change the servers."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TRICORN_", "GUNICORN_"))}


# ------------------------------------------------------------------------------------------ wrk

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_REQS = re.compile(r"(\d+) requests in")
_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_ERR = re.compile(r"Socket errors: (.*)|Non-2xx or 3xx responses: (\d+)")
_SOCK = re.compile(r"(?:connect|read|write|timeout) (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(out: str) -> dict[str, float | str]:
    """rps, requests, p50_ms/p99_ms (with --latency), socket_errors, non_2xx, errors (text)."""
    rps = _RPS.search(out)
    reqs = _REQS.search(out)
    result: dict[str, float | str] = {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": float(reqs.group(1)) if reqs else 0.0,
    }
    for pct, value, unit in _PCT.findall(out):
        result[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    sock = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = float(sum(int(n) for n in _SOCK.findall(sock.group(1)))) if sock else 0.0
    non2xx = _NON2XX.search(out)
    result["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    errors = "; ".join(m.group(0) for m in _ERR.finditer(out))
    if errors:
        result["errors"] = errors
    return result


def run_wrk(wrk_bin: str, url: str, connections: int, duration: float,
            extra: Sequence[str] = (), cpu: int | str | None = None,
            latency: bool = True) -> dict[str, float | str]:
    """One ``wrk -t1`` run (pinned to ``cpu`` unless None), parsed by parse_wrk."""
    args = [wrk_bin, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    if latency:
        args.append("--latency")
    args += ["--timeout", "5s", *extra, url]
    if cpu is not None:
        args = ["taskset", "-c", str(cpu), *args]
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60).stdout
    return parse_wrk(out)


# -------------------------------------------------------------------------------------- results


@dataclass
class Cell:
    """The raw results of one (server, workload) over the rounds."""

    runs: list[dict[str, float | str]] = field(default_factory=list)

    def median(self, key: str) -> float:
        values = [float(r[key]) for r in self.runs if key in r]
        return statistics.median(values) if values else float("nan")

    def total(self, key: str) -> float:
        return sum(float(r.get(key, 0.0)) for r in self.runs)


def report_header(started: float, load_before: tuple[float, float, float],
                  versions: dict[str, str]) -> dict[str, Any]:
    """The first keys of every benchmark's JSON report: the command, when it started, the machine
    (with its load average before and now) and the software versions."""
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_before": load_before, "load_after": os.getloadavg()},
        "versions": versions,
    }


def ratio(a: float, b: float) -> str:
    """``a / b`` as ``1.23x``, or ``n/a`` when either is missing or b is zero."""
    if not b or a != a or b != b:
        return "n/a"
    return f"{a / b:.2f}x"


def paired_ratio(cell: Cell, base: Cell | None, key: str, invert: bool = False) -> str:
    """The median over rounds of this round's figure / the base's in the same round (the two were
    measured a few seconds apart, so a change in the machine's load hits both); `invert` for
    figures where lower is better (base / this)."""
    if base is None:
        return "n/a"
    ratios = []
    for mine, theirs in zip(cell.runs, base.runs, strict=False):
        a, b = float(mine.get(key, 0.0)), float(theirs.get(key, 0.0))
        if a and b:
            ratios.append(b / a if invert else a / b)
    return f"{statistics.median(ratios):.2f}x" if ratios else "n/a"


def cells_from_report(report: dict[str, Any]) -> tuple[dict[tuple[str, str], Cell], list[str],
                                                       list[str]]:
    """(cells, server names, workloads) from a report written with ``--out``."""
    cells: dict[tuple[str, str], Cell] = {}
    names: list[str] = []
    workloads: list[str] = []
    for key, runs in report["results"].items():
        name, workload = key.split("|")
        cells[(name, workload)] = Cell(runs)
        if name not in names:
            names.append(name)
        if workload not in workloads:
            workloads.append(workload)
    return cells, names, workloads


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]],
                   numeric: Sequence[bool] | None = None) -> str:
    """A Markdown table; ``numeric`` columns are right-aligned (default: all but the first)."""
    if numeric is None:
        numeric = [i > 0 for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
