"""The HTTP/1.1 side of tricorn-asgi: one `HttpProtocol` (an `asyncio.Protocol`) per TCP connection,
driving one sans-I/O `tricorn.core.connection.Connection` in push style.

Theory of operation
- `data_received` feeds bytes to the Connection and turns its events into work: a `Request` starts
  a `Cycle` (cycle.py) whose application call runs in its own Task; `Data`/`EndOfMessage` go to that
  cycle's body buffer. A `ProtocolError` is answered with its status, then a lingering close.
- Requests are served one at a time, in order. Pipelined bytes stay in the Connection's buffer
  (it reports PAUSED) and reading is paused until the response completes; then the next request is
  parsed from the buffer (from a fresh loop callback, so it never runs inside the previous
  request's Task or context).
- Flow control, read side: reading pauses when the unread request body passes `read_buffer_size`
  or a pipelined request is waiting, and resumes when the application reads or the response ends.
  Write side: the transport's `pause_writing` makes the next `send()` wait in `drain()` until
  `resume_writing`; the transport's high-water mark is `write_buffer_size`.
- Deadlines: every connection has exactly one deadline (`deadline`, loop time, 0 = none) and the
  kind of wait it bounds (`timer`): the request head (armed in `connection_made`, so a client that
  sends nothing is closed too), keep-alive idleness, a stalled request body (only while the
  application waits for it), a stalled write (only while the transport is paused), the linger after
  an error. The server's periodic tick calls `check_deadline`; no per-request timer handles exist.
- Closing: a response that leaves unread request bytes, or any error response, is followed by a
  half-close (`write_eof`) and a short linger that discards input, so the client reads the response
  before the connection goes (RFC 9112 section 9.6). End of input from the client (TCP cannot tell
  a half-close from a close) ends an idle connection at once; requests already received are still
  answered, then the connection closes; an application waiting in `receive()` after its whole
  request sees `http.disconnect` (as with Uvicorn), while its `send()` still delivers (for a client
  that only half-closed); a request cut short is a disconnect.

Upgrade hand-off (for WebSockets and any other protocol switch)
- A request carrying ``Connection: upgrade`` + ``Upgrade: <token>`` (F_UPGRADE) whose lower-cased
  first token has a handler in `ServerState.upgrades` is offered to it: ``handler(protocol,
  request) -> bool``. Accepting (True) means the handler now owns the connection: it reads what it
  needs from this protocol (`transport`, `conn` for a denial response or the 101, `client`,
  `server`, `scheme`, `extensions`, `conn.trailing_data()` after the 101), calls `detach()`, and
  installs its own protocol with ``transport.set_protocol``. Declining (False), or no handler
  (``--ws none``), serves the request as plain HTTP. A handler that keeps the connection registers
  its protocol in `ServerState.upgraded` (`shutdown()`, `abort()`), so graceful stops reach it.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Task
from typing import Any

from tricorn.core.connection import Connection, Their
from tricorn.core.errors import ProtocolError
from tricorn.core.events import (
    F_AUTHORITY_FORM,
    F_UPGRADE,
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    Request,
)
from tricorn.core.proxy import PROXY_HEADER_NAMES, ProxyHeaderError, resolve
from tricorn.core.writer import error_response

from .cycle import Cycle
from .state import ServerState
from .tls import tls_extension

log = logging.getLogger("tricorn.error")

_IDLE = Their.IDLE  # enum member lookups are slow on the hot path; keep the member at hand
TASK_NAME = "tricorn-http"  # a fixed name spares asyncio formatting "Task-N" for every request

# Kinds of deadline (`HttpProtocol.timer`).
T_NONE = 0
T_HEAD = 1  # waiting for (the rest of) a request head
T_KEEPALIVE = 2  # idle between requests
T_BODY = 3  # the application waits for request body bytes
T_WRITE = 4  # the transport is paused: the client is not reading
T_LINGER = 5  # half-closed after an error; discarding input

_EXTENSIONS: dict[str, Any] = {
    "http.response.trailers": {},
    "http.response.early_hint": {},
    "http.response.pathsend": {},
}


def _address(addr: Any) -> tuple[str, int] | None:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), int(addr[1])
    return None


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection. See the module docstring for the rules it keeps."""

    __slots__ = (
        "state", "loop", "transport", "conn", "cycle", "client", "server", "scheme",
        "extensions", "trusted", "deadline", "timer", "idle_since", "read_paused",
        "write_paused", "drain_waiter", "closed", "lingering", "eof", "fresh", "retiring",
    )

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self.conn: Connection = None  # type: ignore[assignment]
        self.cycle: Cycle | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "http"
        self.extensions = _EXTENSIONS
        self.trusted = False
        self.deadline = 0.0
        self.timer = T_NONE
        self.idle_since = 0.0
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.lingering = False
        self.eof = False  # the client sent its end of input
        self.fresh = True  # no request head received yet on this connection
        self.retiring = False  # shut down by a retiring server: stays usable while idle

    # ------------------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        state = self.state
        self.transport = transport  # type: ignore[assignment]
        conn = self.conn = Connection(
            state.c_limits, server_line=state.server_line, date_header=state.date_header
        )
        if not state.keep_alive or state.shutting_down:
            conn.closing = True
        state.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.client = _address(peer)
        sockname = transport.get_extra_info("sockname")
        server = _address(sockname)
        if server is None and isinstance(sockname, str) and sockname:
            self.server = (sockname, None)
        else:
            self.server = server
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.scheme = "https"
            self.extensions = dict(_EXTENSIONS)
            self.extensions["tls"] = tls_extension(ssl_object, state.tls_server_cert)
        trusted = state.trusted
        self.trusted = trusted is not None and trusted.trusts(
            self.client[0] if self.client is not None else None
        )
        if state.write_buffer_size != 65536:
            transport.set_write_buffer_limits(high=state.write_buffer_size)  # type: ignore[attr-defined]
        now = self.loop.time()
        self.idle_since = now
        self.timer = T_HEAD
        self.deadline = now + state.timeout_header_read

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self.conn.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        """The client will send nothing more (a half-close, or a full close: TCP cannot tell).
        Requests already received are still answered; a request still being received is
        incomplete (its application sees ``http.disconnect``); idle, the connection closes."""
        conn = self.conn
        conn.receive_data(b"")
        if self.lingering or (self.cycle is None and not conn.buffered):
            return False
        self.eof = True
        cycle = self.cycle
        if cycle is None or not conn.their_done:
            self._process()  # a partial head (400) or a partial body (disconnect)
        else:
            cycle.end_of_input()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.timer = T_NONE
        self.deadline = 0.0
        self.state.connection_closed(self)
        cycle = self.cycle
        if cycle is not None:
            self.cycle = None
            cycle.disconnect()
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def detach(self) -> None:
        """Forget this connection (an upgrade handler took it over): no deadline, no counting."""
        self.timer = T_NONE
        self.deadline = 0.0
        self.cycle = None
        self.state.connection_closed(self)

    # ---------------------------------------------------------------------------------- events

    def _process(self) -> None:
        conn = self.conn
        try:
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is Request:
                    if not self._on_request(event):  # type: ignore[arg-type]
                        return
                elif kind is Data:
                    self._on_body(event[0])  # type: ignore[index, arg-type]
                elif kind is EndOfMessage:
                    cycle = self.cycle
                    if cycle is not None:
                        cycle.body_done = True
                        if cycle.waiters:
                            cycle.wake()
                    if self.timer == T_BODY:
                        self.timer = T_NONE
                        self.deadline = 0.0
                    # The next event would be PAUSED: the request is whole. Unread bytes are a
                    # pipelined request, which waits (unread) for this response.
                    if conn.buffered and not self.read_paused:
                        self._pause_reading()
                    return
                elif event is NEED_DATA:
                    if conn.their_state is _IDLE:
                        if self.timer == T_KEEPALIVE and conn.buffered:
                            # the next head has begun: its deadline counts from the last response
                            self.timer = T_HEAD
                            self.deadline = self.idle_since + self.state.timeout_header_read
                        if self.read_paused:
                            self._resume_reading()
                    return
                elif event is PAUSED:
                    if conn.buffered and not self.read_paused:
                        self._pause_reading()
                    return
                else:  # ConnectionClosed: end of input (complete: between requests)
                    cycle = self.cycle
                    if cycle is not None:
                        self.cycle = None
                        cycle.disconnect()
                    self.transport.close()
                    return
        except ProtocolError as exc:
            self._protocol_error(exc)

    def _on_request(self, request: Request) -> bool:
        state = self.state
        self.fresh = False
        self.timer = T_NONE
        self.deadline = 0.0
        if request.flags & F_UPGRADE and state.upgrades and self._offer_upgrade(request):
            return False
        if request.flags & F_AUTHORITY_FORM:  # CONNECT: no tunnels here (as tricorn-wsgi)
            self._reject(405, "CONNECT is not supported")
            return False
        limit = state.limit_concurrency
        if limit is not None and (len(state.connections) > limit or len(state.tasks) >= limit):
            self._reject(503, "concurrency limit reached")
            return False
        peer = self.resolve_peer(request)
        if peer is None:
            return False
        cycle = Cycle(self, request, *peer)
        self.cycle = cycle
        state.tasks.add(cycle)
        if state.heartbeat is not None:
            state.heartbeat.request_started()
        if state.task_factory_free:
            cycle.task = Task(cycle.run(), loop=self.loop, name=TASK_NAME)
        else:  # respect a task factory installed on the loop (instrumentation)
            cycle.task = self.loop.create_task(cycle.run(), name=TASK_NAME)
        return True

    def resolve_peer(self, request: Request) -> tuple[tuple[str, int] | None, str] | None:
        """The client address and scheme of `request`: from proxy headers when the peer is a
        trusted proxy, else the socket's. None after answering 400 to contradictory headers."""
        client, scheme = self.client, self.scheme
        if self.trusted:
            for name, _ in request.headers:
                if name in PROXY_HEADER_NAMES:
                    try:
                        return self._forwarded(request, client, scheme)
                    except ProxyHeaderError as exc:
                        self._reject(400, str(exc))
                        return None
        return client, scheme

    def _forwarded(self, request: Request, client: tuple[str, int] | None, scheme: str
                   ) -> tuple[tuple[str, int] | None, str]:
        trusted = self.state.trusted
        if trusted is None:
            return client, scheme
        found = resolve(request.headers, client[0] if client is not None else None, trusted)
        if found is None:
            return client, scheme
        if found.client_host is not None:
            client = (found.client_host, found.client_port or 0)
        if found.scheme is not None:
            if found.scheme in ("https", "wss"):
                scheme = "https"
            else:
                scheme = "http"
        return client, scheme

    def _offer_upgrade(self, request: Request) -> bool:
        value = request.get(b"upgrade") or b""
        token = value.split(b",", 1)[0].strip().lower()
        handler = self.state.upgrades.get(token)
        if handler is None:
            return False
        return handler(self, request)

    def _on_body(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is None:
            return  # the response is complete; the connection closes after it
        if cycle.feed(data) > self.state.read_buffer_size and not self.read_paused:
            self._pause_reading()
        if self.timer == T_BODY:
            self.deadline = self.loop.time() + self.state.timeout_body_read

    # ----------------------------------------------------------------------- called by the cycle

    def body_wanted(self) -> None:
        """The application waits for request body bytes: bound the wait, and read."""
        if self.timer == T_NONE:
            self.timer = T_BODY
            self.deadline = self.loop.time() + self.state.timeout_body_read
        if self.read_paused:
            self._resume_reading()

    def body_consumed(self) -> None:
        """The application took the buffered body: read more (unless the body is complete)."""
        if self.read_paused and not self.conn.their_done:
            self._resume_reading()

    def response_complete(self, cycle: Cycle) -> None:
        """The last byte of `cycle`'s response has been handed to the transport."""
        state = self.state
        if self.cycle is cycle:
            self.cycle = None
        if state.access_log is not None:
            cycle.log_access(state.access_log)
        state.total_requests += 1
        if state.total_requests == state.max_requests:
            state.max_requests_reached()
        if self.closed:
            return
        conn = self.conn
        # A response that promised persistence (its head went out before a retirement began)
        # keeps its connection: its client may send on it at once (see `shutdown`).
        if conn.keep_alive and (not state.shutting_down or self.retiring):
            conn.start_next_cycle()
            if conn.buffered or self.eof:  # the next request, or the end of input
                self.loop.call_soon(self._next_pipelined)
            else:
                now = self.loop.time()
                self.idle_since = now
                if self.timer != T_WRITE:
                    self.timer = T_KEEPALIVE
                    self.deadline = now + state.keep_alive
                if self.read_paused:
                    self._resume_reading()
        elif conn.their_done:
            self.transport.close()
        else:
            self._linger()

    def response_failed(self, cycle: Cycle, status: int) -> None:
        """The application failed: answer `status` if nothing was sent yet, else cut the
        connection so the client sees an incomplete response. Either way the access log records
        it (the status sent, or the application's for a cut response)."""
        if self.cycle is cycle:
            self.cycle = None
        access_log = self.state.access_log
        if access_log is not None:
            if status:
                cycle.status = status
                cycle.headers = ()
            cycle.log_access(access_log)
        if self.closed:
            return
        if status:
            self.transport.write(error_response(status, self.state.server_line))
            self._linger()
        else:
            self.transport.close()

    async def drain(self) -> None:
        """Wait until the transport takes writes again (or the connection is gone)."""
        if self.timer != T_WRITE:  # the wait is the client's doing: bound it
            self.timer = T_WRITE
            self.deadline = self.loop.time() + self.state.timeout_write
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.loop.create_future()
        await waiter

    # ---------------------------------------------------------------------------- flow control

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.timer == T_NONE or self.timer == T_BODY or self.timer == T_KEEPALIVE:
            self.timer = T_WRITE
            self.deadline = self.loop.time() + self.state.timeout_write

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.timer == T_WRITE:
            if self.cycle is None and not self.closed:
                now = self.loop.time()  # the response went out before the client read it
                self.timer = T_KEEPALIVE
                self.deadline = now + self.state.keep_alive
            else:
                self.timer = T_NONE
                self.deadline = 0.0
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------------------- deadlines

    def check_deadline(self, now: float) -> None:
        """Called by the server's tick: act on an expired deadline."""
        if self.deadline and now >= self.deadline:
            self._on_timeout()

    def _on_timeout(self) -> None:
        timer = self.timer
        self.timer = T_NONE
        self.deadline = 0.0
        if self.closed:
            return
        transport = self.transport
        if timer == T_KEEPALIVE:
            transport.close()
        elif timer == T_HEAD:
            if self.conn.buffered:
                log.debug("request head not received in time from %s", self.client)
                transport.write(error_response(408, self.state.server_line))
                self._linger()
            else:
                transport.close()
        elif timer == T_BODY:
            cycle = self.cycle
            if cycle is not None:
                self.cycle = None
                cycle.disconnect()
                if not cycle.response_started:
                    transport.write(error_response(408, self.state.server_line))
                    self._linger()
                    return
            transport.close()
        else:  # T_WRITE, T_LINGER: the client does not read; do not wait for a flush
            transport.abort()

    # --------------------------------------------------------------------------------- closing

    def shutdown(self, keep_idle: bool = False) -> None:
        """Graceful stop: the current response (and any request already arriving) ends with
        ``connection: close``. An idle keep-alive connection closes at once (its client retries on
        a new one) unless `keep_idle` (a retiring worker): then it keeps its keep-alive deadline,
        and a request sent before it is served, with ``connection: close``. A connection that has
        not had its first response yet, or holds part of a request, is owed one: it gets at most
        `keep_alive` seconds to send it."""
        self.conn.closing = True
        self.retiring = keep_idle
        if self.cycle is not None or self.closed or (keep_idle and self.timer == T_KEEPALIVE):
            return
        if self.fresh or self.conn.buffered:
            state = self.state
            grace = min(state.keep_alive or 1.0, state.timeout_header_read)
            deadline = self.loop.time() + grace
            if self.timer != T_HEAD or deadline < self.deadline:
                self.timer = T_HEAD
                self.deadline = deadline
            return
        self.transport.close()

    def _protocol_error(self, exc: ProtocolError) -> None:
        log.debug("invalid request from %s: %s", self.client, exc)
        cycle = self.cycle
        if cycle is not None:
            self.cycle = None
            cycle.disconnect()
            if cycle.response_started:
                self.transport.close()
                return
        if not self.closed:
            self.transport.write(error_response(exc.status, self.state.server_line, exc.reason))
            self._linger()

    def _reject(self, status: int, reason: str) -> None:
        log.debug("rejected request from %s: %d %s", self.client, status, reason)
        self.transport.write(error_response(status, self.state.server_line, reason))
        self._linger()

    def _linger(self) -> None:
        """Half-close after the last response and discard input for a moment (module doc)."""
        if self.closed or self.lingering:
            return
        self.lingering = True
        transport = self.transport
        if self.eof or self.state.timeout_linger <= 0 or not transport.can_write_eof():
            transport.close()  # (after the client's end of input there is nothing to drain)
            return
        self._resume_reading()
        transport.write_eof()
        self.timer = T_LINGER
        self.deadline = self.loop.time() + self.state.timeout_linger

    def _next_pipelined(self) -> None:
        if not self.closed and self.cycle is None and not self.lingering:
            self._process()


__all__ = ["HttpProtocol"]
