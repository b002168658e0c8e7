"""Fixtures for the tricorn-wsgi tests (helpers live in wsgi_support.py, importable by tests)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wsgi_support import ServerProcess, start_server  # noqa: E402


@pytest.fixture
def server_factory() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(*args: str, **kwargs: object) -> ServerProcess:
        server = start_server(*args, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(5)


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The default test app under each worker class (shared by a module's tests)."""
    args = ("--threads", "4") if request.param == "gthread" else ()
    srv = start_server(*args)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait(5)
