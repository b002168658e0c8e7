"""Helper services a study needs next to the servers: the slow upstream behind the /io endpoint.

The upstream runs for the whole study (one process, loopback, port 0, its real address read from its
`LISTENING` line) and is stopped at the end; its command and address are recorded in the manifest.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.net import ensure_loopback

LISTENING = re.compile(r"LISTENING (http://\S+)")
START_TIMEOUT_S = 15.0


@dataclass
class Service:
    """A started helper process."""

    name: str
    argv: list[str]
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5.0)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "argv": self.argv, "url": self.url, "log": str(self.log.name)}


class ServiceFailed(Exception):
    """A helper service did not start."""


def start_upstream(python: str, repo: Path, host: str, delay_ms: int, log: Path) -> Service:
    """Start `python -m lab.apps.upstream` and wait for its address."""
    ensure_loopback(host)
    argv = [
        python,
        "-m",
        "lab.apps.upstream",
        "--host",
        host.strip("[]"),
        "--port",
        "0",
        "--delay-ms",
        str(delay_ms),
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            argv,
            cwd=repo,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text(errors="replace"))
        if match:
            return Service("upstream", argv, match.group(1), process, log)
        if process.poll() is not None:
            raise ServiceFailed(
                f"upstream exited with code {process.returncode}: {log.read_text(errors='replace')[-500:]}"
            )
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=5.0)
    raise ServiceFailed(f"upstream did not report its address within {START_TIMEOUT_S:.0f} s")
