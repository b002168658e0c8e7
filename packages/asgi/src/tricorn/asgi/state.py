"""What every connection of one tricorn-asgi server shares: the application, the settings the
protocol reads on its hot path (flattened into plain attributes), and the live sets.

Invariants:
- One `ServerState` per server (per process under the arbiter). Protocols and cycles only read the
  configuration attributes; the server mutates the runtime ones (`shutting_down`, `app_state`)
  from the event loop thread, never from another thread.
- `connections` holds every open HTTP protocol (idle keep-alive ones too) and `tasks` every request
  cycle whose application call has not returned; both are what `--limit-concurrency` counts and what
  a graceful shutdown drains. `upgraded` holds the connections an upgrade handler took over (a
  WebSocket) until both their transport and their application are done: a graceful shutdown asks
  each to `shutdown()` and drains them too; what is left at the end is `abort()`ed.
- `total_requests` counts completed responses; reaching `max_requests` (when non-zero) calls
  `on_max_requests` exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tricorn.core.limits import ParserLimits
from tricorn.core.logs import AccessLog
from tricorn.core.parser import CLimits, c_limits
from tricorn.core.proxy import TrustedPeers

from .types import ASGIApp

if TYPE_CHECKING:
    import asyncio

    from tricorn.core.worker import Heartbeat

    from .cycle import Cycle
    from .protocol import HttpProtocol

UpgradeHandler = Callable[["HttpProtocol", Any], bool]
"""Takes over a connection whose request asks to switch protocols (see protocol.py); returns False
to decline (the request is then served as plain HTTP)."""

SERVER_LINE = b"server: tricorn\r\n"


class Upgraded(Protocol):
    """A connection taken over by an upgrade handler, as the server's shutdown sees it."""

    def shutdown(self) -> None:
        """Graceful stop: end the connection politely (a WebSocket sends close 1001)."""

    def abort(self) -> asyncio.Task[Any] | None:
        """The graceful wait is over (or a quick stop): drop the connection and cancel the
        application; returns its task to wait for (None when it is done)."""


class ServerState:
    """Configuration and live state shared by the connections of one server (see module doc)."""

    __slots__ = (
        "app", "c_limits", "server_line", "date_header", "extra_headers", "root_path",
        "root_path_bytes", "timeout_header_read", "keep_alive", "timeout_body_read",
        "timeout_write", "timeout_linger", "read_buffer_size", "write_buffer_size",
        "limit_concurrency", "max_requests", "access_log", "proxy_headers", "trusted",
        "upgrades", "tls_server_cert", "pid", "app_state",
        "connections", "tasks", "upgraded", "total_requests", "shutting_down", "on_max_requests",
        "on_drained", "task_factory_free", "targets", "heartbeat",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: ParserLimits | CLimits | None = None,
        server_header: bool = True,
        date_header: bool = True,
        extra_headers: tuple[tuple[bytes, bytes], ...] = (),
        root_path: str = "",
        timeout_header_read: float = 30.0,
        keep_alive: float = 5.0,
        timeout_body_read: float = 30.0,
        timeout_write: float = 60.0,
        timeout_linger: float = 2.0,
        read_buffer_size: int = 65536,
        write_buffer_size: int = 65536,
        limit_concurrency: int | None = None,
        max_requests: int = 0,
        access_log: AccessLog | None = None,
        proxy_headers: bool = True,
        forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1"),
        upgrades: Mapping[bytes, UpgradeHandler] | None = None,
        tls_server_cert: str | None = None,
    ) -> None:
        self.app = app
        if limits is None:
            limits = ParserLimits()
        self.c_limits = c_limits(limits) if isinstance(limits, ParserLimits) else limits
        self.server_line = SERVER_LINE if server_header else b""
        self.date_header = date_header
        self.extra_headers = extra_headers
        self.root_path = root_path
        self.root_path_bytes = root_path.encode("utf-8")
        self.timeout_header_read = timeout_header_read
        self.keep_alive = keep_alive
        self.timeout_body_read = timeout_body_read
        self.timeout_write = timeout_write
        self.timeout_linger = timeout_linger
        self.read_buffer_size = read_buffer_size
        self.write_buffer_size = write_buffer_size
        self.limit_concurrency = limit_concurrency
        self.max_requests = max_requests
        self.access_log = access_log
        self.proxy_headers = proxy_headers
        self.trusted = TrustedPeers(forwarded_allow_ips) if proxy_headers else None
        self.upgrades: dict[bytes, UpgradeHandler] = dict(upgrades or {})
        self.tls_server_cert = tls_server_cert
        self.pid = os.getpid()
        self.app_state: dict[str, Any] = {}
        """The lifespan `state` namespace; each request scope gets a shallow copy."""
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[Cycle] = set()
        self.upgraded: set[Upgraded] = set()
        self.total_requests = 0
        self.shutting_down = False
        self.on_max_requests: Callable[[], None] | None = None
        self.on_drained: Callable[[], object] | None = None
        self.targets: dict[bytes, tuple[bytes, bytes, str]] = {}
        """Recent origin-form request-targets -> (raw_path, query_string, path), root path
        included (cycle.py); bounded, cleared when full."""
        self.heartbeat: Heartbeat | None = None
        """An arbiter's heartbeat, told about every request (None when nobody watches)."""
        self.task_factory_free = True
        """No task factory is installed on the loop: request Tasks are built directly (cheaper).
        The server sets it from the running loop."""
        """Set by a graceful shutdown: called once no request runs and no connection is open."""

    def task_done(self, cycle: Cycle) -> None:
        """A request's application call has returned."""
        self.tasks.discard(cycle)
        if self.on_drained is not None and self.drained():
            self.on_drained()

    def connection_closed(self, proto: HttpProtocol) -> None:
        """A connection is gone (or was handed to another protocol)."""
        self.connections.discard(proto)
        if self.on_drained is not None and self.drained():
            self.on_drained()

    def upgraded_closed(self, proto: Upgraded) -> None:
        """An upgraded connection is gone and its application has returned."""
        self.upgraded.discard(proto)
        if self.on_drained is not None and self.drained():
            self.on_drained()

    def drained(self) -> bool:
        """No request runs and no connection (HTTP or upgraded) is open."""
        return not self.tasks and not self.connections and not self.upgraded

    def max_requests_reached(self) -> None:
        """The protocol counts completed responses in `total_requests` and calls this when the
        count equals `max_requests` (see the module invariants)."""
        if self.max_requests and self.on_max_requests is not None:
            self.on_max_requests()


__all__ = ["SERVER_LINE", "ServerState", "UpgradeHandler", "Upgraded"]
