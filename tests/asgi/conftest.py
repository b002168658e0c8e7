"""Fixtures for the tricorn-asgi tests (helpers live in asgi_support.py and asgi_apps.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_support import Harness, ServerProcess, ServerThread, start_process  # noqa: E402


@pytest.fixture
def harness() -> Iterator[Callable[..., Harness]]:
    """Make a protocol harness: ``h = harness(app, keep_alive=1.0)``."""
    made: list[Harness] = []

    def make(app: Any, **options: Any) -> Harness:
        h = Harness(app, **options)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def server() -> Iterator[Callable[..., ServerThread]]:
    """Start a server thread: ``srv = server(app, keep_alive=1)``; stopped at the end."""
    started: list[ServerThread] = []

    def start(app: Any, **options: Any) -> ServerThread:
        srv = ServerThread(app, **options).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start the real command: ``p = process("asgi_apps:app", "--lifespan", "on")``."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs: Any) -> ServerProcess:
        proc = start_process(*args, tmp_path=tmp_path, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
