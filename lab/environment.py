"""Machine and software facts recorded with every run: enough to tell two runs' conditions apart.

Python (version, implementation, executable), kernel and platform, CPU model and count (and the CPUs
this process may use), memory, load average at the start, git revision (and whether the tree was
dirty), the versions of the load generators and servers, and `pip freeze` of the lab's environment.
Every probe tolerates absence: a missing tool is recorded as null.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "locust",
    "matplotlib",
    "httpx",
    "rich",
    "websocket-client",
    "gunicorn",
    "uvicorn",
    "uvicorn-worker",
    "granian",
    "tricorn-core",
    "tricorn-wsgi",
    "tricorn-asgi",
    "tricorn-arbiter",
)


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 20.0) -> str | None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (
        (done.stdout or done.stderr).strip() if done.returncode == 0 or done.stdout or done.stderr else None
    )


def cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        return None
    return platform.processor() or None


def memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def git_facts(repo: Path) -> dict[str, Any]:
    """Revision, branch, and whether tracked files differ from it."""
    revision = _run(["git", "rev-parse", "HEAD"], repo)
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], repo)
    return {
        "revision": revision,
        "branch": _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], repo),
        "dirty": bool(status) if status is not None else None,
        "describe": _run(["git", "log", "-1", "--format=%h %cI %s"], repo),
    }


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def wrk_version() -> str | None:
    out = _run(["wrk", "--version"])
    return out.splitlines()[0] if out else None


def collect(repo: Path) -> dict[str, Any]:
    """Everything above as one JSON-ready dict."""
    uname = platform.uname()
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "build": list(platform.python_build()),
        },
        "platform": platform.platform(),
        "kernel": f"{uname.system} {uname.release} {uname.version}",
        "machine": uname.machine,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_bytes": memory_total_bytes(),
        "loadavg_at_start": list(os.getloadavg()),
        "git": git_facts(repo),
        "packages": package_versions(),
        "wrk": wrk_version(),
    }


def pip_freeze(python: str = sys.executable) -> str:
    """`pip freeze` of the environment the lab runs in (editable installs included)."""
    return _run([python, "-m", "pip", "freeze", "--all"], timeout=60.0) or "# pip freeze failed\n"
