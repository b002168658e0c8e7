"""Deployments: declarative entries (command, environment, warm-up, readiness probe) and the catalogue.

A deployment is data, not code: an argv template, extra environment, what must be installed for it to
run, how to know it is ready, how to warm it up, and what it supports (WebSocket, HUP reload, forked
workers). `lab.availability` decides whether it can run here; `lab.server` runs it.

argv templates are formatted with: {python} (the lab's interpreter), {host}, {port}, {bind}
(`HOST:PORT`, IPv6 bracketed), {workers}, {threads}, {wsgi_app}, {asgi_app}.

Catalogue names: `<server>-<model>[-w<N>]`. The tricorn entries follow issue 7: sync (`tricorn -k sync`),
threaded (`tricorn -k gthread`), async (`tricorn-asgi`, one process), hybrid (`tricorn -k asgi`), each
pre-fork one at 1 and N workers; plus the standalone `tricorn-wsgi` (sync and threaded) and
`tricorn-asgi --interface wsgi`. Peers appear when installed; `wsgiref` (stdlib) always runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lab.net import url_host

WSGI_APP = "lab.apps.wsgi_app:app"
ASGI_APP = "lab.apps.asgi_app:app"


@dataclass(frozen=True)
class Readiness:
    """Ready when GET `path` answers 2xx within `timeout_s`, polled every `interval_s`.

    `port_discovery`: "assigned" (the lab picks a free port and passes it) or "log" (the server binds
    port 0 and the lab reads the real port from the first `http://HOST:PORT` in its output).
    """

    path: str = "/health"
    timeout_s: float = 20.0
    interval_s: float = 0.05
    port_discovery: str = "assigned"


@dataclass(frozen=True)
class Warmup:
    """Before measuring: `requests` GETs of the workload's warm-up path over `connections` connections
    (bounded by `timeout_s`), then `settle_s` of quiet."""

    requests: int = 200
    connections: int = 4
    timeout_s: float = 10.0
    settle_s: float = 0.3


@dataclass(frozen=True)
class Deployment:
    """One way to serve the lab app."""

    name: str
    family: str  # "tricorn" | "peer" | "reference"
    model: str  # "sync" | "threaded" | "async" | "hybrid"
    interface: str  # the app face it serves: "wsgi" | "asgi"
    workers: int  # worker processes (1 for a single-process server)
    argv: tuple[str, ...]
    description: str
    env: Mapping[str, str] = field(default_factory=dict)
    requires_modules: tuple[str, ...] = ()
    readiness: Readiness = field(default_factory=Readiness)
    warmup: Warmup = field(default_factory=Warmup)
    websocket: bool = False
    reload_signal: str | None = None  # e.g. "SIGHUP" when the server reloads its workers on it
    forks_workers: bool = False  # a master with worker children (kill -9 one is meaningful)
    stop_timeout_s: float = 5.0

    def command(self, host: str, port: int, python: str, threads: int) -> list[str]:
        """The concrete argv for this host and port."""
        values = {
            "python": python,
            "host": host.strip("[]"),
            "port": str(port),
            "bind": f"{url_host(host)}:{port}",
            "workers": str(self.workers),
            "threads": str(threads),
            "wsgi_app": WSGI_APP,
            "asgi_app": ASGI_APP,
        }
        return [part.format(**values) for part in self.argv]

    @property
    def executable(self) -> str:
        """The program the argv starts ("{python}" for the lab's own interpreter)."""
        return self.argv[0]


def _tricorn(workers_n: int) -> list[Deployment]:
    out: list[Deployment] = [
        Deployment(
            "tricorn-wsgi-sync",
            "tricorn",
            "sync",
            "wsgi",
            1,
            ("tricorn-wsgi", "-b", "{bind}", "{wsgi_app}"),
            "tricorn-wsgi alone, one process, one request at a time",
        ),
        Deployment(
            "tricorn-wsgi-threads",
            "tricorn",
            "threaded",
            "wsgi",
            1,
            ("tricorn-wsgi", "-b", "{bind}", "--threads", "{threads}", "{wsgi_app}"),
            "tricorn-wsgi alone, one process, a thread pool",
        ),
        Deployment(
            "tricorn-asgi",
            "tricorn",
            "async",
            "asgi",
            1,
            ("tricorn-asgi", "--host", "{host}", "--port", "{port}", "{asgi_app}"),
            "tricorn-asgi alone, one asyncio process",
            websocket=True,
        ),
        Deployment(
            "tricorn-asgi-wsgi",
            "tricorn",
            "async",
            "wsgi",
            1,
            ("tricorn-asgi", "--host", "{host}", "--port", "{port}", "--interface", "wsgi", "{wsgi_app}"),
            "tricorn-asgi alone serving the WSGI face from a thread pool",
        ),
    ]
    for n in sorted({1, workers_n}):
        out += [
            Deployment(
                f"tricorn-sync-w{n}",
                "tricorn",
                "sync",
                "wsgi",
                n,
                ("tricorn", "-w", "{workers}", "-k", "sync", "-b", "{bind}", "{wsgi_app}"),
                f"tricorn arbiter, {n} sync worker(s)",
                reload_signal="SIGHUP",
                forks_workers=True,
            ),
            Deployment(
                f"tricorn-gthread-w{n}",
                "tricorn",
                "threaded",
                "wsgi",
                n,
                (
                    "tricorn",
                    "-w",
                    "{workers}",
                    "-k",
                    "gthread",
                    "--threads",
                    "{threads}",
                    "-b",
                    "{bind}",
                    "{wsgi_app}",
                ),
                f"tricorn arbiter, {n} threaded worker(s)",
                reload_signal="SIGHUP",
                forks_workers=True,
            ),
            Deployment(
                f"tricorn-hybrid-w{n}",
                "tricorn",
                "hybrid",
                "asgi",
                n,
                ("tricorn", "-w", "{workers}", "-k", "asgi", "-b", "{bind}", "{asgi_app}"),
                f"tricorn arbiter, {n} asyncio worker(s)",
                websocket=True,
                reload_signal="SIGHUP",
                forks_workers=True,
            ),
        ]
    return out


def _peers(workers_n: int) -> list[Deployment]:
    n = workers_n
    return [
        Deployment(
            f"gunicorn-sync-w{n}",
            "peer",
            "sync",
            "wsgi",
            n,
            ("gunicorn", "-w", "{workers}", "-k", "sync", "-b", "{bind}", "{wsgi_app}"),
            f"gunicorn, {n} sync workers",
            reload_signal="SIGHUP",
            forks_workers=True,
        ),
        Deployment(
            f"gunicorn-gthread-w{n}",
            "peer",
            "threaded",
            "wsgi",
            n,
            (
                "gunicorn",
                "-w",
                "{workers}",
                "-k",
                "gthread",
                "--threads",
                "{threads}",
                "-b",
                "{bind}",
                "{wsgi_app}",
            ),
            f"gunicorn, {n} gthread workers",
            reload_signal="SIGHUP",
            forks_workers=True,
        ),
        Deployment(
            "uvicorn",
            "peer",
            "async",
            "asgi",
            1,
            (
                "uvicorn",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--no-access-log",
                "--log-level",
                "warning",
                "{asgi_app}",
            ),
            "uvicorn, one process",
            websocket=True,
            requires_modules=("uvicorn",),
        ),
        Deployment(
            f"uvicorn-w{n}",
            "peer",
            "hybrid",
            "asgi",
            n,
            (
                "uvicorn",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--workers",
                "{workers}",
                "--no-access-log",
                "--log-level",
                "warning",
                "{asgi_app}",
            ),
            f"uvicorn's own supervisor, {n} workers",
            websocket=True,
            forks_workers=True,
            reload_signal="SIGHUP",
        ),
        Deployment(
            f"gunicorn-uvicorn-w{n}",
            "peer",
            "hybrid",
            "asgi",
            n,
            (
                "gunicorn",
                "-w",
                "{workers}",
                "-k",
                "uvicorn_worker.UvicornWorker",
                "-b",
                "{bind}",
                "{asgi_app}",
            ),
            f"gunicorn + uvicorn-worker, {n} workers",
            websocket=True,
            requires_modules=("uvicorn_worker",),
            reload_signal="SIGHUP",
            forks_workers=True,
        ),
        Deployment(
            f"gunicorn-asgi-w{n}",
            "peer",
            "hybrid",
            "asgi",
            n,
            ("gunicorn", "-w", "{workers}", "-k", "asgi", "-b", "{bind}", "{asgi_app}"),
            f"gunicorn's own asgi worker, {n} workers",
            websocket=True,
            requires_modules=("gunicorn.workers.gasgi",),
            reload_signal="SIGHUP",
            forks_workers=True,
        ),
        Deployment(
            f"granian-asgi-w{n}",
            "peer",
            "hybrid",
            "asgi",
            n,
            (
                "granian",
                "--interface",
                "asgi",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--workers",
                "{workers}",
                "--log-level",
                "warning",
                "{asgi_app}",
            ),
            f"granian (Rust I/O), ASGI, {n} workers",
            websocket=True,
            forks_workers=True,
        ),
        Deployment(
            f"granian-wsgi-w{n}",
            "peer",
            "threaded",
            "wsgi",
            n,
            (
                "granian",
                "--interface",
                "wsgi",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--workers",
                "{workers}",
                "--log-level",
                "warning",
                "{wsgi_app}",
            ),
            f"granian (Rust I/O), WSGI, {n} workers",
            forks_workers=True,
        ),
    ]


def reference() -> list[Deployment]:
    """Deployments that need nothing installed beyond the standard library."""
    return [
        Deployment(
            "wsgiref",
            "reference",
            "threaded",
            "wsgi",
            1,
            (
                "{python}",
                "-m",
                "lab.apps.stdlib_server",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "{wsgi_app}",
            ),
            "stdlib wsgiref, a thread per connection, no keep-alive (the floor)",
        ),
    ]


def catalogue(workers_n: int = 2) -> list[Deployment]:
    """Every deployment the lab knows, with N = `workers_n` for the multi-worker entries."""
    if workers_n < 1:
        raise ValueError("workers_n must be >= 1")
    return _tricorn(workers_n) + _peers(workers_n) + reference()


def by_name(deployments: list[Deployment]) -> dict[str, Deployment]:
    """Index by name (names are unique in a catalogue)."""
    index: dict[str, Deployment] = {}
    for deployment in deployments:
        if deployment.name in index:
            raise ValueError(f"duplicate deployment name {deployment.name!r}")
        index[deployment.name] = deployment
    return index
