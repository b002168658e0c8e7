"""The ``asgi`` worker class (`tricorn.core.worker` contract): what an arbiter child runs, and
what the standalone ``tricorn-asgi`` command runs in its own process.

``AsgiWorker(context).run()`` serves the context's application on the context's listening sockets
until stopped and returns the exit code: 0 after a normal stop (SIGTERM graceful; SIGINT/SIGQUIT
quick, after the ``worker_int`` hook; the standalone request limit reached), 3 when it cannot boot
(the event loop asked for is missing, lifespan startup failed), 4 when the application cannot be
loaded or its interface cannot be used.

Invariants:
- The application is loaded inside the running event loop, so import-time code that looks up the
  loop finds the one that will serve it.
- ``heartbeat.notify()`` is called from the event loop's own tick, never from a thread, at least
  every ``context.notify_interval`` seconds: an arbiter sees a blocked loop as a hung worker.
  ``heartbeat.ready()`` is called once the sockets accept; ``request_started`` /
  ``request_finished`` bracket every application call (not called at all for a heartbeat nobody
  watches, the standalone case).
- Under the arbiter the request budget (``--max-requests``) is the arbiter's to enforce: it reads
  the heartbeat's counters and replaces the worker. Only the standalone command stops itself, on
  ``--limit-max-requests`` (+ jitter).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl

from tricorn.core import settings as core
from tricorn.core.apploader import AppLoadError
from tricorn.core.logs import ErrorStream, Logs
from tricorn.core.settings import Settings, parser_limits
from tricorn.core.worker import (
    EXIT_APP_LOAD_ERROR,
    EXIT_BOOT_ERROR,
    NullHeartbeat,
    WorkerContext,
)

from . import settings as asgi_settings
from .interface import InterfaceError, adapt
from .lifespan import Lifespan
from .loops import LoopUnavailable, loop_factory, loop_name
from .server import Server, run, tick_interval
from .state import ServerState, UpgradeHandler
from .tls import first_pem_certificate
from .types import ASGIApp

log = logging.getLogger("tricorn.error")


def max_requests(cfg: Settings) -> int:
    """The standalone request budget: --limit-max-requests plus a random 0..jitter; 0 = none.
    (Settings loaded for the arbiter do not have these: the arbiter enforces its own.)"""
    base = cfg.data.get("limit_max_requests")
    if not isinstance(base, int) or not base:
        return 0
    jitter = cfg.data.get("limit_max_requests_jitter")
    if not isinstance(jitter, int) or jitter <= 0:
        return base
    return base + random.randint(0, jitter)  # noqa: S311 - not security


def upgrade_handlers(cfg: Settings) -> dict[bytes, UpgradeHandler]:
    """Protocol-switch handlers by Upgrade token (see protocol.py). WebSocket support plugs in
    here: with ``--ws auto`` a ``tricorn.asgi.websocket`` module providing ``upgrade_handler(cfg)``
    is used when present; ``--ws none`` registers nothing."""
    if asgi_settings.get(cfg, asgi_settings.WS) == "none":
        return {}
    try:
        from . import websocket
    except ImportError:
        return {}
    return {b"websocket": websocket.upgrade_handler(cfg)}


def build_state(cfg: Settings, app: ASGIApp, logs: Logs | None) -> ServerState:
    """The `ServerState` for these settings (flattened for the hot path)."""
    get = asgi_settings.get
    extra = tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in cfg[core.HEADER]
    )
    return ServerState(
        app,
        limits=parser_limits(cfg),
        server_header=cfg[core.SERVER_HEADER],
        date_header=cfg[core.DATE_HEADER],
        extra_headers=extra,
        root_path=cfg[core.ROOT_PATH],
        timeout_header_read=cfg[core.TIMEOUT_HEADER_READ],
        keep_alive=cfg[core.KEEP_ALIVE],
        timeout_body_read=get(cfg, asgi_settings.TIMEOUT_BODY_READ),
        timeout_write=get(cfg, asgi_settings.TIMEOUT_WRITE),
        timeout_linger=get(cfg, asgi_settings.TIMEOUT_LINGER),
        read_buffer_size=get(cfg, asgi_settings.READ_BUFFER_SIZE),
        write_buffer_size=get(cfg, asgi_settings.WRITE_BUFFER_SIZE),
        limit_concurrency=get(cfg, asgi_settings.LIMIT_CONCURRENCY),
        max_requests=max_requests(cfg),
        access_log=logs.access if logs is not None else None,
        proxy_headers=cfg[core.PROXY_HEADERS],
        forwarded_allow_ips=cfg[core.FORWARDED_ALLOW_IPS],
        upgrades=upgrade_handlers(cfg),
        tls_server_cert=first_pem_certificate(cfg[core.CERTFILE]),
    )


class AsgiWorker:
    """The ``asgi`` worker class (see the module docstring)."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.server: Server | None = None

    def run(self) -> int:
        cfg = self.context.settings
        try:
            factory = loop_factory(asgi_settings.get(cfg, asgi_settings.LOOP))
        except LoopUnavailable as exc:
            log.error("%s", exc)
            return EXIT_BOOT_ERROR
        return run(self._main, factory)

    async def _main(self) -> int:
        context = self.context
        cfg = context.settings
        try:
            app = context.load_app()
            asgi_app, interface = adapt(
                app,  # type: ignore[arg-type]
                asgi_settings.get(cfg, asgi_settings.INTERFACE),
                wsgi_threads=asgi_settings.get(cfg, asgi_settings.WSGI_THREADS),
                wsgi_errors=ErrorStream(context.logs.handler) if context.logs is not None else None,
            )
        except AppLoadError as exc:
            log.error("%s", exc, exc_info=exc.kind in ("import_failed", "factory_failed"))
            return EXIT_APP_LOAD_ERROR
        except InterfaceError as exc:
            log.error("cannot serve %s: %s", context.app_spec, exc)
            return EXIT_APP_LOAD_ERROR
        state = build_state(cfg, asgi_app, context.logs)
        heartbeat = context.heartbeat
        if type(heartbeat) is not NullHeartbeat and not isinstance(heartbeat, StandaloneHeartbeat):
            state.heartbeat = heartbeat
        log.info("Using the %s event loop, %s interface",
                 loop_name(asyncio.get_running_loop()), interface)
        lifespan_mode = asgi_settings.get(cfg, asgi_settings.LIFESPAN)
        if interface == "wsgi":
            lifespan_mode = "off"
        ssl_context = context.ssl_context if isinstance(context.ssl_context, ssl.SSLContext) else None
        server = self.server = Server(
            state,
            context.sockets,
            lifespan=Lifespan(asgi_app, lifespan_mode, state.app_state,
                              timeout=asgi_settings.get(cfg, asgi_settings.TIMEOUT_LIFESPAN)),
            ssl_context=ssl_context,
            backlog=cfg[core.BACKLOG],
            graceful_timeout=context.graceful_timeout,
            heartbeat=heartbeat.notify,
            on_ready=heartbeat.ready,
            on_quick=lambda: context.hooks.call("worker_int", context),
            fair_accept=shares_sockets(cfg, state.heartbeat is not None),
        )
        server.tick = min(server.tick, tick_interval(context.notify_interval))
        return await server.serve()


def shares_sockets(cfg: Settings, under_arbiter: bool) -> bool:
    """Whether sibling workers accept on the same listening sockets: several workers under an
    arbiter, without ``--reuse-port`` (where each worker has a socket of its own)."""
    workers = cfg.data.get("workers", 1)
    return (under_arbiter and isinstance(workers, int) and workers > 1
            and not cfg.data.get(core.REUSE_PORT.name, False))


class StandaloneHeartbeat(NullHeartbeat):
    """A heartbeat nobody watches whose `ready` runs a callback (the standalone command's)."""

    __slots__ = ("_on_ready",)

    def __init__(self, on_ready: object = None) -> None:
        self._on_ready = on_ready

    def ready(self) -> None:
        callback, self._on_ready = self._on_ready, None
        if callable(callback):
            callback()


__all__ = ["AsgiWorker", "StandaloneHeartbeat", "build_state", "max_requests", "upgrade_handlers"]
