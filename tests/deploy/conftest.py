"""Fixtures for the deployment tests (real nginx, real tricorn processes, loopback only). The helpers
live in deploy_harness.py, put on sys.path here (the suite runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_harness import Nginx, Server  # noqa: E402


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``server(command, *args, env=...)`` starts a tricorn command; all are stopped at the end."""
    started: list[Server] = []

    def start(command: str, *args: str, **kwargs: object) -> Server:
        proc = Server(command, list(args), tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """``nginx(upstream, prefix=..., proxy_headers=...)``: nginx from docs/deploy/nginx.conf."""
    started: list[Nginx] = []

    def start(upstream: str, **kwargs: str) -> Nginx:
        proc = Nginx(tmp_path, upstream, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
