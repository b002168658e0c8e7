"""Raw-throughput cells with wrk (when installed): a C load generator for what Locust cannot saturate.

`run` starts `wrk -t T -c C -d Ds --latency URL` against a loopback server (bounded by -d, and killed
at D + grace), keeps its output verbatim in the cell folder, and `parse` turns that text into numbers
(requests/s, latency percentiles in ms, errors), so the report renders from the stored text alone.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lab.net import ensure_loopback

GRACE_S = 15.0
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkResult:
    """What wrk measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p75_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    socket_errors: int
    non_2xx: int

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def argv(url: str, threads: int, connections: int, duration_s: float, program: str = "wrk") -> list[str]:
    """The wrk command for a loopback URL."""
    ensure_loopback(urlsplit(url).hostname or "")
    return [
        program,
        "-t",
        str(threads),
        "-c",
        str(max(connections, threads)),
        "-d",
        f"{max(1, round(duration_s))}s",
        "--latency",
        url,
    ]


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse(text: str) -> WrkResult | None:
    """Numbers from wrk's text output, or None when it is not a finished wrk run."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not done or not rps:
        return None
    percentiles: dict[str, float | None] = {}
    for name in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        percentiles[name] = _to_ms(match.group(1), match.group(2)) if match else None
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_to_ms(done.group(2), done.group(3)) / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def start(command: list[str], output: Path) -> subprocess.Popen[bytes]:
    """Launch wrk with stdout and stderr into `output`."""
    with open(output, "wb") as handle:
        return subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def wait(process: subprocess.Popen[bytes], duration_s: float) -> int | None:
    """Wait for wrk to finish (at most duration + grace, then kill it); return its exit code."""
    try:
        return process.wait(timeout=duration_s + GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5.0)
        return None
    except BaseException:
        process.kill()
        raise
