"""WebSockets for tricorn-asgi: the ASGI websocket scope (spec 2.4) over the sans-I/O
`tricorn.core.websocket.WebSocketConnection` (frames parsed by the C codec).

Theory of operation
- `upgrade_handler(cfg)` is registered for the ``websocket`` Upgrade token (worker.py; ``--ws none``
  registers nothing, so upgrade requests are plain HTTP). The handler validates the handshake (GET,
  HTTP/1.1, ``Sec-WebSocket-Version: 13``, a ``Sec-WebSocket-Key`` of 16 base64 bytes; the
  Connection/Upgrade tokens were checked by the parser and protocol.py): a bad one is answered 400
  (426 for another version) and closed. A request with neither Sec-WebSocket-Version nor -Key is
  not an RFC 6455 handshake: it is declined and served as plain HTTP. A good one takes the
  connection over: `HttpProtocol.detach()`, ``transport.set_protocol(WebSocketProtocol)``, and
  the application runs in its own Task.
- Before ``websocket.accept`` nothing is read (bytes that arrive are kept, reading is paused beyond
  64 KiB). ``websocket.accept`` writes the 101 (subprotocol, extra headers, permessage-deflate
  response when negotiated). ``websocket.close`` before accept is a 403;
  ``websocket.http.response.start``/``.body`` (the denial-response extension) send any response.
  An application that returns without accepting gets a 403, one that raises a 500.
- Receiving: complete messages are queued for ``receive()``; with ``--ws-max-queue`` messages
  waiting, reading pauses until the application catches up (a flooding client is throttled by TCP).
  Sending: ``send()`` writes, and waits while the transport is paused (a slow reader). Messages
  sent while more received ones wait in the queue (an application working through a batch) are
  gathered and written together (one writev) when the queue runs empty, when 16 KiB gathered, before
  any control frame, or at the latest after the current loop iteration.
- Closing: the client's close frame is echoed, the TCP connection closed, and ``receive()`` returns
  ``websocket.disconnect`` with the client's code (1005 when none, 1006 for a connection lost without
  a close frame). The application's ``websocket.close`` sends a close frame and waits up to
  ``--ws-ping-timeout`` for the client's before closing TCP. A protocol violation closes with
  1002/1007/1009 at once. An application that returns while open closes with 1000 (1011 after an
  exception).
- Keepalive: a ping every ``--ws-ping-interval`` seconds; no pong within ``--ws-ping-timeout``
  closes the connection (1006 for the application).
- Write timeout: a transport that stays paused (the client does not read what is sent) for
  ``--timeout-write`` seconds is aborted: the application sees ``websocket.disconnect`` with 1006
  and a ``send()`` waiting for the transport raises `ClientDisconnected`. So a stalled client holds
  at most the transport's high-water mark of unsent data, and not for ever.
- Graceful shutdown (server.py): the connection is registered in `ServerState.upgraded` from the
  handshake until both the TCP connection and the application are done. `shutdown()` sends a close
  frame with 1001 (going away), gives the application ``websocket.disconnect`` with 1001 and
  closes TCP after the client's close frame or ``--ws-ping-timeout`` (5 s when 0); one not accepted
  yet gets the same right after its accept. A handshake that arrives while the server stops is
  refused with 503. `abort()` (the graceful timeout passed, or a quick stop) cancels the
  application and drops the connection.
- ``send()`` after the connection is closed raises `ClientDisconnected` (an OSError).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from tricorn.core.events import Request
from tricorn.core.settings import Settings
from tricorn.core.websocket import (
    PerMessageDeflate,
    WebSocketConnection,
    WsState,
    accept_key,
    valid_key,
)

from . import settings as asgi_settings
from .cycle import target_parts
from .errors import ASGIProtocolError, ClientDisconnected
from .state import ServerState

log = logging.getLogger("tricorn.error")

HANDSHAKE_BUFFER: int = 65536
_EXTENSIONS: dict[str, Any] = {"websocket.http.response": {}}

# phases of the ASGI side
H_CONNECTING = 0  # before accept
H_OPEN = 1  # accepted
H_RESPONSE = 2  # sending a denial response
H_DONE = 3  # closed (or the handshake was refused)


WRITEV_SIZE = 16384
"""Payloads larger than this are written after their header with `writelines` (uvloop: one
writev, no copy) rather than concatenated to it."""
GOING_AWAY = 1001
CLOSE_TIMEOUT = 5.0
"""How long to wait for the client's close frame when ``--ws-ping-timeout`` is 0."""


class WsConfig:
    __slots__ = ("max_size", "max_queue", "ping_interval", "ping_timeout", "deflate",
                 "write_timeout")

    def __init__(self, max_size: int = 16 * 1024 * 1024, max_queue: int = 32,
                 ping_interval: float | None = 20.0, ping_timeout: float | None = 20.0,
                 deflate: bool = True, write_timeout: float | None = 60.0) -> None:
        self.max_size = max_size
        self.max_queue = max_queue
        self.ping_interval = ping_interval or None
        self.ping_timeout = ping_timeout or None
        self.deflate = deflate
        self.write_timeout = write_timeout or None


def config_from(cfg: Settings) -> WsConfig:
    get = asgi_settings.get
    return WsConfig(
        max_size=get(cfg, asgi_settings.WS_MAX_SIZE),
        max_queue=get(cfg, asgi_settings.WS_MAX_QUEUE),
        ping_interval=get(cfg, asgi_settings.WS_PING_INTERVAL),
        ping_timeout=get(cfg, asgi_settings.WS_PING_TIMEOUT),
        deflate=get(cfg, asgi_settings.WS_PER_MESSAGE_DEFLATE),
        write_timeout=get(cfg, asgi_settings.TIMEOUT_WRITE),
    )


def _as_bytes(data: Any) -> bytes:
    """The ``bytes`` of a ``websocket.send`` that is not exactly `bytes`."""
    if data is None:
        raise ASGIProtocolError("websocket.send needs text or bytes")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ASGIProtocolError("websocket.send bytes must be bytes")
    return bytes(data)


def upgrade_handler(cfg: Settings | WsConfig) -> Any:
    """The ``websocket`` upgrade handler for protocol.py's `ServerState.upgrades`."""
    config = cfg if isinstance(cfg, WsConfig) else config_from(cfg)

    def handler(proto: Any, request: Request) -> bool:
        return handshake(proto, request, config)

    return handler


def _refuse(proto: Any, status: int, reason: bytes,
            extra: list[tuple[bytes, bytes]] | None = None) -> None:
    conn = proto.conn
    conn.closing = True
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if extra:
        headers += extra
    proto.transport.write(conn.send_full_response(status, headers, reason))
    proto.detach()
    proto.transport.close()


def handshake(proto: Any, request: Request, config: WsConfig) -> bool:
    if request.method != b"GET" or request.http_version != "1.1":
        _refuse(proto, 400, b"WebSocket handshake needs GET and HTTP/1.1\n")
        return True
    version = request.get(b"sec-websocket-version")
    if version is None and request.get(b"sec-websocket-key") is None:
        return False  # not an RFC 6455 handshake (e.g. hixie-76): an ordinary HTTP request
    if version != b"13":
        _refuse(proto, 426, b"Unsupported WebSocket version\n", [(b"sec-websocket-version", b"13")])
        return True
    key = request.get(b"sec-websocket-key") or b""
    if not valid_key(key):
        _refuse(proto, 400, b"Invalid Sec-WebSocket-Key\n")
        return True
    state = proto.state
    if state.shutting_down:  # it would be closed with 1001 at once: let it reconnect elsewhere
        _refuse(proto, 503, b"Server shutting down\n")
        return True
    peer = proto.resolve_peer(request)
    if peer is None:  # contradictory proxy headers: answered with 400
        return True
    client, scheme = peer
    raw_path, query, path = target_parts(request.target, request.flags, state.root_path,
                                         state.root_path_bytes)
    subprotocols: list[str] = []
    offers: list[bytes] = []
    for name, value in request.headers:
        if name == b"sec-websocket-protocol":
            subprotocols += [p.strip().decode("latin-1") for p in value.split(b",") if p.strip()]
        elif name == b"sec-websocket-extensions":
            offers.append(value)
    extensions = dict(proto.extensions)
    extensions.update(_EXTENSIONS)
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "wss" if scheme == "https" else "ws",
        "server": proto.server,
        "client": client,
        "root_path": state.root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": request.headers,
        "subprotocols": subprotocols,
        "state": state.app_state.copy(),
        "extensions": extensions,
    }
    deflate = None
    if config.deflate and offers:
        deflate = PerMessageDeflate.negotiate(b", ".join(offers))
    transport = proto.transport
    ws = WebSocketProtocol(proto.loop, transport, proto.conn, state.app, scope, key, deflate, config,
                           state)
    pending = proto.conn.trailing_data()
    was_paused = proto.read_paused
    state.upgraded.add(ws)
    proto.detach()
    transport.set_protocol(ws)
    ws.start(pending, was_paused)
    return True


class WebSocketProtocol(asyncio.BufferedProtocol):
    """One WebSocket connection after the upgrade request (see the module docstring).

    A buffered protocol: the transport reads into the frame parser's buffer (`get_buffer`), so
    received bytes are not first copied into a bytes object and then into a parse buffer.
    `data_received` serves transports that do not read that way."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, conn: Any,
                 app: Any, scope: dict[str, Any], key: bytes,
                 deflate: tuple[PerMessageDeflate, bytes] | None, config: WsConfig,
                 state: ServerState | None = None) -> None:
        self.loop = loop
        self.state = state
        self.transport = transport
        self.http = conn
        self.app = app
        self.scope = scope
        self.key = key
        self.offer = deflate
        self.config = config
        self.ws: WebSocketConnection | None = None
        self.read_buffer: Callable[[], memoryview] | None = None  # ws.get_buffer once accepted
        self.phase = H_CONNECTING
        self.pending = bytearray()
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.close_waiter: asyncio.Future[None] | None = None
        self.connected_sent = False
        self.read_paused = False
        self.write_paused = False
        self.closed = False  # the TCP connection is gone
        self.disconnect_code: int | None = None  # set once the application must see a disconnect
        self.ping_handle: asyncio.TimerHandle | None = None
        self.pong_handle: asyncio.TimerHandle | None = None
        self.write_handle: asyncio.TimerHandle | None = None
        self.going_away = False  # the server is stopping: close with 1001 once accepted
        self.handshake_view: memoryview | None = None
        # send(): messages gathered while more received ones wait for the application
        self.out: list[bytes] = []
        self.out_size = 0
        self.flush_handle: asyncio.Handle | None = None
        self.task: asyncio.Task[None] | None = None

    # --------------------------------------------------------------------------- lifecycle

    def start(self, pending: bytes, read_paused: bool) -> None:
        self.read_paused = read_paused
        if pending:
            self.pending += pending
        if len(self.pending) > HANDSHAKE_BUFFER:
            self._pause_reading()
        self.task = self.loop.create_task(self.run(), name="tricorn-ws")

    async def run(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except asyncio.CancelledError:
            self._abort()
            raise
        except Exception:
            log.exception("Exception in ASGI application")
            self._finish(error=True)
        else:
            if result is not None:
                log.error("ASGI callable returned a value (%s); ASGI 3 applications return None",
                          type(result).__name__)
            self._finish(error=False)
        finally:
            self.loop.call_soon(self._check_done)

    def _check_done(self) -> None:
        """Leave the server's bookkeeping once both the connection and the application are done."""
        state = self.state
        if state is not None and self.closed and (self.task is None or self.task.done()):
            self.state = None
            state.upgraded_closed(self)

    # ------------------------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        """The server stops gracefully: close 1001 (see the module docstring)."""
        if self.closed:
            return
        if self.phase == H_CONNECTING:
            self.going_away = True  # answered right after the accept, if it comes
        elif self.phase == H_OPEN:
            self._go_away()

    def _go_away(self) -> None:
        ws = self.ws
        if ws is None or self.closed:
            return
        self._write(ws.send_close(GOING_AWAY, "server shutting down"))
        self._disconnected(GOING_AWAY, "")
        self.loop.call_later(self.config.ping_timeout or CLOSE_TIMEOUT, self._abort_if_open)

    def abort(self) -> asyncio.Task[None] | None:
        """Drop the connection and cancel the application (the server's last resort)."""
        if not self.closed:
            self.transport.abort()
        task = self.task
        if task is None or task.done():
            return None
        task.cancel()
        return task

    def _finish(self, error: bool) -> None:
        """The application returned: refuse, complete or close what it left open."""
        phase = self.phase
        if self.closed:
            return
        if phase == H_CONNECTING:
            self._http_refuse(500 if error else 403)
        elif phase == H_RESPONSE:
            self._abort()
        elif phase == H_OPEN and self.ws is not None:
            self._close(1011 if error else 1000, "")

    def _abort(self) -> None:
        self.phase = H_DONE
        if not self.closed:
            self.transport.close()

    def _http_refuse(self, status: int) -> None:
        self.phase = H_DONE
        conn = self.http
        conn.closing = True
        self.transport.write(conn.send_full_response(
            status, [(b"content-type", b"text/plain; charset=utf-8")],
            b"Forbidden\n" if status == 403 else b"Internal Server Error\n"))
        self.transport.close()

    # ---------------------------------------------------------------------- asyncio protocol

    def get_buffer(self, sizehint: int) -> memoryview:
        read_buffer = self.read_buffer
        if read_buffer is not None:
            return read_buffer()  # the parser's buffer (see WebSocketConnection.get_buffer)
        view = self.handshake_view  # before the accept: bytes kept for later (see data_received)
        if view is None:
            view = self.handshake_view = memoryview(bytearray(16384))
        return view

    def buffer_updated(self, nbytes: int) -> None:
        ws = self.ws
        if ws is None:
            view = self.handshake_view
            if view is not None:
                self.data_received(view[:nbytes].tobytes())
            return
        self._handle(ws, ws.buffer_updated(nbytes))

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        if ws is None:
            if self.phase == H_CONNECTING:
                self.pending += data
                if len(self.pending) > HANDSHAKE_BUFFER:
                    self._pause_reading()
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        ws = self.ws
        if ws is not None:
            self._handle(ws, ws.receive_data(data))

    def _handle(self, ws: WebSocketConnection, events: list[Any]) -> None:
        queue = self.queue
        for event in events:
            kind = type(event)
            if kind is bytes:
                queue.append({"type": "websocket.receive", "bytes": event})
            elif kind is str:
                queue.append({"type": "websocket.receive", "text": event})
            elif self._control(ws, event):
                return
        if ws.outgoing:  # pongs
            self._write(ws.data_to_send())
        if queue:
            if len(queue) >= self.config.max_queue and not self.read_paused:
                self._pause_reading()
            waiter = self.waiter
            if waiter is not None:
                self.waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    def _control(self, ws: WebSocketConnection, event: tuple[Any, ...]) -> bool:
        """A control event; True when it ended the connection."""
        kind = event[0]
        if kind == "pong":
            handle = self.pong_handle
            if handle is not None:
                handle.cancel()
                self.pong_handle = None
            return False
        if kind == "ping":
            return False  # answered by the connection (its pong is in ws.outgoing)
        self._write(ws.data_to_send())
        self._disconnected(event[1], event[2] if kind == "close" else "")
        self.transport.close()  # the server closes TCP first (RFC 6455 section 7.1.1)
        return True

    def eof_received(self) -> bool | None:
        return False  # close: a WebSocket needs both directions

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timers()
        self.out = []
        handle = self.flush_handle
        if handle is not None:
            self.flush_handle = None
            handle.cancel()
        if self.disconnect_code is None:
            self._disconnected(1006, "")
        for name in ("drain_waiter", "close_waiter"):
            waiter = getattr(self, name)
            if waiter is not None:
                setattr(self, name, None)
                if not waiter.done():
                    waiter.set_result(None)
        self._check_done()

    def pause_writing(self) -> None:
        self.write_paused = True
        timeout = self.config.write_timeout
        if timeout and self.write_handle is None and not self.closed:
            self.write_handle = self.loop.call_later(timeout, self._write_timed_out)

    def _write_timed_out(self) -> None:
        self.write_handle = None
        if self.write_paused and not self.closed:
            log.debug("WebSocket client %s did not read for %ss: aborting", self.scope.get("client"),
                      self.config.write_timeout)
            self.transport.abort()  # connection_lost: 1006 for the application

    def resume_writing(self) -> None:
        self.write_paused = False
        handle = self.write_handle
        if handle is not None:
            self.write_handle = None
            handle.cancel()
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def _write(self, data: bytes) -> None:
        if self.out:  # gathered messages first
            self._flush()
        if data and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        """Write the gathered messages (one writev with uvloop)."""
        handle = self.flush_handle
        if handle is not None:
            self.flush_handle = None
            handle.cancel()
        out = self.out
        if out:
            self.out = []
            self.out_size = 0
            if not self.closed and not self.transport.is_closing():
                self.transport.writelines(out)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _disconnected(self, code: int, reason: str) -> None:
        if self.disconnect_code is None:
            self.disconnect_code = code
            self.disconnect_reason = reason
        self.phase = H_DONE
        self._cancel_timers()
        waiter = self.close_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._wake()

    # ----------------------------------------------------------------------------- keepalive

    def _cancel_timers(self) -> None:
        for name in ("ping_handle", "pong_handle", "write_handle"):
            handle = getattr(self, name)
            if handle is not None:
                handle.cancel()
                setattr(self, name, None)

    def _schedule_ping(self) -> None:
        interval = self.config.ping_interval
        if interval:
            self.ping_handle = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self.ping_handle = None
        ws = self.ws
        if ws is None or self.closed or ws.state is not WsState.OPEN:
            return
        self._write(ws.send_ping(b"tricorn"))
        timeout = self.config.ping_timeout
        if timeout and self.pong_handle is None:
            self.pong_handle = self.loop.call_later(timeout, self._pong_missing)
        self._schedule_ping()

    def _pong_missing(self) -> None:
        self.pong_handle = None
        if not self.closed:
            self.transport.abort()

    # ---------------------------------------------------------------------------------- ASGI

    async def receive(self) -> dict[str, Any]:
        if not self.connected_sent:  # first, even for an application that accepted without it
            self.connected_sent = True
            return {"type": "websocket.connect"}
        queue = self.queue
        while True:
            if queue:
                message = queue.popleft()
                if self.read_paused:
                    self._maybe_resume_reading()
                return message
            if self.disconnect_code is not None or self.closed:
                return {"type": "websocket.disconnect", "code": self.disconnect_code or 1006,
                        "reason": getattr(self, "disconnect_reason", "")}
            if self.read_paused and self.ws is not None:
                self._resume_reading()
            if self.out:  # the application waits: what it sent goes now
                self._flush()
            waiter = self.waiter = self.loop.create_future()
            await waiter

    def _maybe_resume_reading(self) -> None:
        if len(self.queue) < self.config.max_queue // 2 + 1 and self.phase != H_CONNECTING:
            self._resume_reading()

    async def send(self, message: dict[str, Any]) -> None:
        if self.phase != H_OPEN or message.get("type") != "websocket.send":
            await self._send_other(message)
            return
        data = message.get("text")  # the hot path: a message on an open connection
        if data is None:
            data = message.get("bytes")
            if type(data) is not bytes:
                data = _as_bytes(data)
        elif type(data) is not str:
            if not isinstance(data, str):
                raise ASGIProtocolError("websocket.send text must be str")
            data = str(data)  # a subclass (an enum member, markup): sent as plain text
        header, payload = self.ws.message_frame(data)  # type: ignore[union-attr]
        if self.queue or self.out:
            self._gather(header, payload)
        else:
            transport = self.transport
            if not transport.is_closing():
                if len(payload) > WRITEV_SIZE:  # no copy behind the header
                    transport.writelines((header, payload))
                else:
                    transport.write(header + payload)
        if self.write_paused and not self.closed:
            await self._drain()

    def _gather(self, header: bytes, payload: bytes) -> None:
        """Queue a message behind others: replies to a batch of received messages go in one write."""
        out = self.out
        out.append(header)
        out.append(payload)
        if not self.queue:  # the batch is answered
            self._flush()
            return
        self.out_size += len(payload)
        if self.out_size > WRITEV_SIZE:
            self._flush()
        elif self.flush_handle is None:  # at the latest after this loop iteration
            self.flush_handle = self.loop.call_soon(self._flush)

    async def _drain(self) -> None:
        """Wait while the transport is paused (a slow reader)."""
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.loop.create_future()
        await waiter
        if self.closed:  # aborted (write timeout) before the client read it
            raise ClientDisconnected("the WebSocket connection is closed")

    async def _send_other(self, message: dict[str, Any]) -> None:
        """Every `send()` but a message on an open connection."""
        mtype = message.get("type")
        phase = self.phase
        if phase == H_OPEN:
            if mtype == "websocket.close":
                code = message.get("code") or 1000
                reason = message.get("reason") or ""
                await self._app_close(int(code), str(reason))
                return
            raise ASGIProtocolError(f"unexpected ASGI message {mtype!r} on an open WebSocket")
        if phase == H_CONNECTING:
            if self.closed:
                raise ClientDisconnected("the client went away during the handshake")
            if mtype == "websocket.accept":
                self._accept(message)
                return
            if mtype == "websocket.close":
                self._http_refuse(403)
                return
            if mtype == "websocket.http.response.start":
                self._response_start(message)
                return
            raise ASGIProtocolError(f"unexpected ASGI message {mtype!r} before websocket.accept")
        if phase == H_RESPONSE:
            if mtype == "websocket.http.response.body":
                body = message.get("body", b"")
                self._write(self.http.send_data(bytes(body)))
                if not message.get("more_body", False):
                    self._write(self.http.send_end())
                    self.phase = H_DONE
                    if not self.closed:
                        self.transport.close()
                return
            raise ASGIProtocolError(f"unexpected ASGI message {mtype!r} in a denial response")
        raise ClientDisconnected("the WebSocket connection is closed")

    def _accept(self, message: dict[str, Any]) -> None:
        headers: list[tuple[bytes, bytes]] = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(self.key)),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            if subprotocol not in self.scope["subprotocols"]:
                log.warning("websocket.accept subprotocol %r was not offered", subprotocol)
            headers.append((b"sec-websocket-protocol", str(subprotocol).encode("latin-1")))
        deflate = None
        if self.offer is not None:
            deflate, response = self.offer
            headers.append((b"sec-websocket-extensions", response))
        for name, value in message.get("headers") or ():
            lname = bytes(name).lower()
            if lname in (b"sec-websocket-protocol", b"sec-websocket-accept", b"upgrade",
                         b"connection", b"sec-websocket-extensions"):
                if lname == b"sec-websocket-protocol" and subprotocol is None:
                    headers.append((lname, bytes(value)))
                continue
            headers.append((lname, bytes(value)))
        self._write(self.http.send_informational(101, headers))
        self.phase = H_OPEN
        self.ws = ws = WebSocketConnection(self.config.max_size, deflate)
        self.read_buffer = ws.get_buffer
        self.handshake_view = None  # from now on the transport reads into the parser's buffers
        if self.going_away:  # the server began to stop before the accept
            self._go_away()
        else:
            self._schedule_ping()
        pending = bytes(self.pending)
        self.pending = bytearray()
        if pending:  # now, before any byte that arrives later
            self._feed(pending)
        if self.read_paused:
            self._resume_reading()

    def _response_start(self, message: dict[str, Any]) -> None:
        status = int(message.get("status", 200))
        headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers") or ()]
        conn = self.http
        conn.closing = True
        self._write(conn.send_response(status, headers))
        self.phase = H_RESPONSE

    async def _app_close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None:
            return
        self._write(ws.send_close(code, reason))
        self.phase = H_DONE
        if self.closed:
            return
        waiter = self.close_waiter = self.loop.create_future()
        timeout = self.config.ping_timeout
        try:
            if timeout:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            else:
                await waiter
        except TimeoutError:
            pass
        if not self.closed:
            self.transport.close()

    def _close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or self.closed:
            return
        self._write(ws.send_close(code, reason))
        self.phase = H_DONE
        # wait briefly for the client's close frame, then close
        timeout = self.config.ping_timeout or 5.0
        self.loop.call_later(timeout, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self.closed:
            self.transport.close()


__all__ = ["WebSocketProtocol", "WsConfig", "config_from", "handshake", "upgrade_handler"]
