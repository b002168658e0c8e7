"""WSGI server benchmark: tricorn-wsgi (sync, gthread) vs gunicorn (sync, gthread) vs granian (wsgi).

Every server runs the same application (benchmarks/wsgi/app.py) as one process pinned to one core
(taskset), and wrk (one thread, 64 connections, pinned to another core) loads it over loopback.
Workloads: hello world with keep-alive, hello world with ``Connection: close``, a 64 KiB response,
and a 16 KiB POST echoed back. Runs are interleaved (round r: every server, every workload) because
the machine is shared and noisy; the report gives, per server and workload, the median req/s and
the median p99 latency over the rounds, and tricorn's ratios against its peers.

Setup it does itself (idempotent): installs wrk with apt-get if it is missing, and gunicorn and
granian into a separate virtualenv (default /tmp/tricorn-bench-venv; not the dev requirements).
tricorn runs from the Python executing this script, which must have tricorn-wsgi installed.

    python benchmarks/wsgi/bench.py                       # 3 rounds x 5 s, everything
    python benchmarks/wsgi/bench.py --rounds 5 --duration 10 --json results.json
    python benchmarks/wsgi/bench.py --servers tricorn-gthread,granian-wsgi --workloads hello
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREADS = 4


@dataclass
class Workload:
    name: str
    path: str
    wrk_args: tuple[str, ...] = ()
    lua: str | None = None


WORKLOADS = {
    "hello": Workload("hello keep-alive", "/"),
    "close": Workload("hello Connection: close", "/", ("-H", "Connection: close")),
    "64k": Workload("64 KiB response", "/64k"),
    "post": Workload(
        "16 KiB POST echo", "/echo",
        lua='wrk.method = "POST"\nwrk.body = string.rep("a", 16384)\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n',
    ),
}


def server_commands(py: str, peer_py: str, port: int) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    return {
        "tricorn-sync": [py, "-m", "tricorn.wsgi", "-b", bind, "app:app"],
        "tricorn-gthread": [py, "-m", "tricorn.wsgi", "-b", bind, "--threads", str(THREADS),
                            "app:app"],
        "gunicorn-sync": [peer_py, "-m", "gunicorn", "-b", bind, "-w", "1", "app:app"],
        "gunicorn-gthread": [peer_py, "-m", "gunicorn", "-b", bind, "-w", "1", "-k", "gthread",
                             "--threads", str(THREADS), "app:app"],
        "granian-wsgi": [peer_py, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
                         "--port", str(port), "--workers", "1", "--runtime-threads", "1",
                         "--no-ws", "app:app"],
    }


# ---------------------------------------------------------------------------------------- setup


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk with apt-get ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-q"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not available")
    return found


def ensure_peers(venv: Path) -> str:
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(py), "-c", "import gunicorn, granian"], capture_output=True)
    if probe.returncode != 0:
        print("installing gunicorn and granian ...", file=sys.stderr)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "gunicorn", "granian"], check=True)
    return str(py)


def versions(py: str, peer_py: str) -> dict[str, str]:
    def ver(python: str, dist: str) -> str:
        out = subprocess.run([python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                             capture_output=True, text=True)
        return out.stdout.strip() or "?"

    return {
        "tricorn-wsgi": ver(py, "tricorn-wsgi"),
        "gunicorn": ver(peer_py, "gunicorn"),
        "granian": ver(peer_py, "granian"),
        "python": platform.python_version(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
    }


# ------------------------------------------------------------------------------------------ run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server not ready")


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(rps, _ms(pct.get("50", "nan")), _ms(pct.get("99", "nan")), errors,
                  int(non2xx.group(1)) if non2xx else 0)


def run_wrk(wrk: str, port: int, wl: Workload, duration: float, connections: int,
            wrk_cpu: str, lua_dir: Path) -> Result:
    cmd = ["taskset", "-c", wrk_cpu, wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
           "--latency", "--timeout", "5s", *wl.wrk_args]
    if wl.lua:
        script = lua_dir / "post.lua"
        script.write_text(wl.lua)
        cmd += ["-s", str(script)]
    cmd.append(f"http://127.0.0.1:{port}{wl.path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return parse_wrk(out)


@dataclass
class Bench:
    results: dict[str, dict[str, list[Result]]] = field(default_factory=dict)

    def add(self, server: str, workload: str, result: Result) -> None:
        self.results.setdefault(workload, {}).setdefault(server, []).append(result)

    def median(self, workload: str, server: str, attr: str) -> float:
        values = [getattr(r, attr) for r in self.results.get(workload, {}).get(server, [])]
        return statistics.median(values) if values else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--wrk-cpu", default="1")
    parser.add_argument("--servers", default="tricorn-sync,tricorn-gthread,gunicorn-sync,"
                        "gunicorn-gthread,granian-wsgi")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--venv", default="/tmp/tricorn-bench-venv",
                        help="virtualenv for gunicorn and granian")
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args(argv)

    wrk = ensure_wrk()
    peer_py = ensure_peers(Path(args.venv))
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    loads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bench = Bench()
    lua_dir = Path(tempfile.mkdtemp(prefix="tricorn-bench-"))
    for rnd in range(args.rounds):
        for name in names:
            port = free_port()
            cmd = server_commands(sys.executable, peer_py, port)[name]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TRICORN_", "GUNICORN_"))}
            proc = subprocess.Popen(["taskset", "-c", args.server_cpu, *cmd], cwd=HERE, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL)
            try:
                wait_ready(port, proc)
                if args.warmup:
                    run_wrk(wrk, port, WORKLOADS["hello"], args.warmup, args.connections,
                            args.wrk_cpu, lua_dir)
                for key in loads:
                    result = run_wrk(wrk, port, WORKLOADS[key], args.duration, args.connections,
                                     args.wrk_cpu, lua_dir)
                    bench.add(name, key, result)
                    print(f"round {rnd + 1} {name:17} {key:6} {result.rps:10.0f} req/s  "
                          f"p99 {result.p99_ms:8.2f} ms  errors {result.errors}",
                          file=sys.stderr, flush=True)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
    report(bench, names, loads, args, versions(sys.executable, peer_py))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args),
            "results": {w: {s: [r.__dict__ for r in rs] for s, rs in by.items()}
                        for w, by in bench.results.items()},
        }, indent=1))
    return 0


def report(bench: Bench, names: list[str], loads: list[str], args: argparse.Namespace,
           vers: dict[str, str]) -> None:
    print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s, server on CPU {args.server_cpu}, "
          f"wrk on CPU {args.wrk_cpu}, {args.rounds} interleaved rounds, medians; "
          f"gthread/threads: {THREADS}; " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print()
    print("| workload | server | req/s | p99 ms | errors |")
    print("|---|---|---:|---:|---:|")
    for key in loads:
        for name in names:
            errs = sum(r.errors + r.non_2xx for r in bench.results.get(key, {}).get(name, []))
            print(f"| {WORKLOADS[key].name} | {name} | {bench.median(key, name, 'rps'):.0f} | "
                  f"{bench.median(key, name, 'p99_ms'):.2f} | {errs} |")
    print()
    pairs = [("tricorn-sync", "gunicorn-sync"), ("tricorn-gthread", "gunicorn-gthread"),
             ("tricorn-gthread", "granian-wsgi"), ("tricorn-sync", "granian-wsgi")]
    pairs = [(a, b) for a, b in pairs if a in names and b in names]
    if not pairs:
        return
    print("| workload | " + " | ".join(f"{a} / {b}" for a, b in pairs) + " |")
    print("|---|" + "---:|" * len(pairs))
    for key in loads:
        cells = []
        for a, b in pairs:
            ratio = bench.median(key, a, "rps") / bench.median(key, b, "rps")
            p99 = bench.median(key, a, "p99_ms") / bench.median(key, b, "p99_ms")
            cells.append(f"{ratio:.2f}x (p99 {p99:.2f}x)")
        print(f"| {WORKLOADS[key].name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
