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
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402

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


def ensure_peers(venv: Path) -> str:
    bin_dir = common.ensure_venv(venv, ["gunicorn", "granian"], ["gunicorn", "granian"])
    return str(bin_dir / "python")


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
        "wrk": common.wrk_version(),
    }


# ------------------------------------------------------------------------------------------ run


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


def run_wrk(wrk: str, port: int, wl: Workload, duration: float, connections: int,
            wrk_cpu: str, lua_dir: Path) -> Result:
    extra = list(wl.wrk_args)
    if wl.lua:
        script = lua_dir / "post.lua"
        script.write_text(wl.lua)
        extra += ["-s", str(script)]
    out = common.run_wrk(wrk, f"http://127.0.0.1:{port}{wl.path}", connections, duration, extra,
                         wrk_cpu)
    if not out["rps"]:
        raise RuntimeError(f"wrk gave no result for {wl.name}")
    return Result(float(out["rps"]), float(out.get("p50_ms", float("nan"))),
                  float(out.get("p99_ms", float("nan"))), int(out["socket_errors"]),
                  int(out["non_2xx"]))


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

    wrk = common.ensure_wrk()
    peer_py = ensure_peers(Path(args.venv))
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    loads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bench = Bench()
    lua_dir = Path(tempfile.mkdtemp(prefix="tricorn-bench-"))
    for rnd in range(args.rounds):
        for name in names:
            port = common.free_port()
            cmd = server_commands(sys.executable, peer_py, port)[name]
            env = common.clean_env()
            proc = subprocess.Popen(["taskset", "-c", args.server_cpu, *cmd], cwd=HERE, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL)
            try:
                common.wait_ready(port, proc)
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
