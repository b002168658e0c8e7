"""Fixtures for the arbiter tests; the helpers live in arbiter_harness.py (put on sys.path here,
since the suite runs with --import-mode=importlib and has no __init__.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arbiter_harness import TEST_WORKER, Master  # noqa: E402


@pytest.fixture
def tricorn(tmp_path: Path) -> Iterator[Callable[..., Master]]:
    """Start masters (``tricorn(*args, app=..., worker_class=..., env=...)``); all are stopped
    at the end of the test."""
    started: list[Master] = []

    def start(*args: str, env: dict[str, str] | None = None, app: str | None = "apps:app",
              worker_class: str | None = TEST_WORKER) -> Master:
        master = Master(list(args), tmp_path, env=env, app=app, worker_class=worker_class)
        started.append(master)
        return master

    yield start
    for master in started:
        master.stop()
