"""One ASGI HTTP request/response cycle: the scope, `receive()`, `send()` and the application call.

The scope follows the ASGI HTTP spec 2.4 completely: ``type, asgi {version, spec_version},
http_version, method, scheme, path, raw_path, query_string, root_path, headers, client, server,
state`` and ``extensions`` (``http.response.trailers``, ``http.response.early_hint``,
``http.response.pathsend``, and ``tls`` on TLS connections). ``path`` and ``raw_path`` include
``root_path`` (as Uvicorn and Starlette expect); ``path`` is percent-decoded UTF-8.

Invariants (the application contract, enforced here):
- Response messages must come in order: optional ``early_hint``s, ``start``, then ``body`` messages
  (or one ``pathsend``), then ``trailers`` when ``start`` announced them. Anything else raises
  `ASGIProtocolError` into the application, before a byte of the offending message is written.
- Nothing is written before the first body message: the head and the first body go out in one
  `transport.write`. A single body message with ``more_body=False`` gets a Content-Length from the
  server; a streamed body without one is chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
- An application that returns (or raises) without starting its response gets a 500 sent for it; one
  that stops in the middle of a response gets its connection closed, so the client sees an
  incomplete response. Exceptions are logged; `ClientDisconnected` (ours) is not.
- After the connection is gone, `send()` raises `ClientDisconnected` (an `OSError`, spec 2.4) and
  `receive()` returns ``http.disconnect``; after the response is complete, further `send()` calls
  are ignored and `receive()` returns ``http.disconnect``.
- `receive()` never returns more body than has arrived, never blocks while body bytes are
  buffered, and sends ``100 Continue`` the first time it has to wait for a body the client holds
  back behind ``Expect: 100-continue``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_to_bytes

from tricorn.core.errors import LocalProtocolError
from tricorn.core.events import (
    F_ABSOLUTE_FORM,
    F_ASTERISK_FORM,
    F_AUTHORITY_FORM,
    F_HTTP11,
    Request,
)
from tricorn.core.logs import AccessLog, AccessRecord

from .errors import ASGIProtocolError, ClientDisconnected
from .sendfile import send_file
from .types import Message, Scope

if TYPE_CHECKING:
    from .protocol import HttpProtocol

log = logging.getLogger("tricorn.error")

# Response phases.
P_START: Final = 0  # nothing from the application yet (early hints may come)
P_HEAD: Final = 1  # http.response.start received; nothing written yet
P_BODY: Final = 2  # the head is written; more body to come
P_TRAILERS: Final = 3  # the body is complete; waiting for http.response.trailers
P_DONE: Final = 4  # the response is complete

_UNUSUAL_TARGET: Final = F_ABSOLUTE_FORM | F_ASTERISK_FORM | F_AUTHORITY_FORM
_NO_BODY_STATUS: Final = (204, 304)
_COPY_LIMIT: Final = 16384
"""Bodies smaller than this are joined to the head (one buffer); larger ones go out with
`writelines` (one writev on uvloop) instead of being copied."""
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
}


def split_target(target: bytes, flags: int) -> tuple[bytes, bytes]:
    """(raw path, query string) of a request-target in any of the four forms."""
    if flags & _UNUSUAL_TARGET:
        if flags & F_ASTERISK_FORM:
            return b"*", b""
        if flags & F_AUTHORITY_FORM:
            return b"", b""
        rest = target.partition(b"://")[2]  # absolute-form: drop scheme and authority
        cut = len(rest)
        for sep in (b"/", b"?"):
            found = rest.find(sep)
            if 0 <= found < cut:
                cut = found
        target = rest[cut:]
        if not target.startswith(b"/"):
            target = b"/" + target
    path, _, query = target.partition(b"?")
    return path, query


def decode_path(raw_path: bytes) -> str:
    """Percent-decoded, UTF-8 decoded path (invalid UTF-8 becomes U+FFFD)."""
    if b"%" in raw_path or not raw_path.isascii():
        return unquote_to_bytes(raw_path).decode("utf-8", "replace")
    return raw_path.decode("ascii")


TARGET_CACHE_MAX: Final = 512
"""How many recent request-targets a server remembers the split/decoded parts of."""


def target_parts(target: bytes, flags: int, root: str, root_bytes: bytes
                 ) -> tuple[bytes, bytes, str]:
    """(raw_path, query_string, path) of a request-target, `root` prefixed (see the module doc)."""
    raw_path, query = split_target(target, flags)
    path = decode_path(raw_path)
    if root:
        path = root + path
        raw_path = root_bytes + raw_path
    return raw_path, query, path


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ASGIProtocolError(f"{what} must be bytes, got {type(value).__name__}")


class Cycle:
    """The state of one request/response exchange (see the module docstring)."""

    __slots__ = (
        "proto", "conn", "transport", "request", "app", "scope", "task", "phase", "status",
        "headers", "trailers", "trailer_fields", "chunks", "buffered", "body_done", "body_taken",
        "waiters", "disconnected", "client_eof", "sent", "started",
    )

    def __init__(self, proto: HttpProtocol, request: Request,
                 client: tuple[str, int] | None, scheme: str) -> None:
        state = proto.state
        self.proto = proto
        self.conn = proto.conn
        self.transport = proto.transport
        self.request = request
        self.app = state.app
        target = request.target
        targets = state.targets
        parts = targets.get(target)
        if parts is None:
            parts = target_parts(target, request.flags, state.root_path, state.root_path_bytes)
            if len(target) <= 256 and not request.flags & _UNUSUAL_TARGET:
                if len(targets) >= TARGET_CACHE_MAX:
                    targets.clear()
                targets[target] = parts
        raw_path, query, path = parts
        root = state.root_path
        method = request.method
        self.scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.http_version,
            "server": proto.server,
            "client": client,
            "scheme": scheme,
            "method": _METHODS.get(method) or method.decode("ascii"),
            "root_path": root,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": request.headers,
            "state": state.app_state.copy(),
            "extensions": proto.extensions.copy(),
        }
        self.task: asyncio.Task[None] | None = None
        self.phase = P_START
        self.status = 0
        self.headers: Any = ()
        self.trailers = False
        self.trailer_fields: list[tuple[bytes, bytes]] | None = None
        self.chunks: list[bytes] | None = None
        self.buffered = 0
        self.body_done = False
        self.body_taken = False
        self.waiters: list[asyncio.Future[None]] | None = None
        self.disconnected = False
        self.client_eof = proto.eof  # the client sent its end of input (see `end_of_input`)
        self.sent = 0
        self.started = (
            time.time() if state.access_log is not None or state.heartbeat is not None else 0.0
        )

    @property
    def response_started(self) -> bool:
        """Some of the response has been written (a 500 can no longer replace it)."""
        return self.phase >= P_BODY

    # ------------------------------------------------------------------ the application call

    async def run(self) -> None:
        try:
            result: object = await self.app(  # type: ignore[func-returns-value]
                self.scope, self.receive, self.send)
        except ClientDisconnected:
            self._abandon()
        except asyncio.CancelledError:
            self._abandon()
            raise
        except Exception:
            log.exception("Exception in ASGI application")
            self._abandon()
        else:
            if result is not None:
                log.error("ASGI callable returned a value (%s); ASGI 3 applications return None",
                          type(result).__name__)
            if self.phase != P_DONE and not self.disconnected:
                if self.phase == P_START:
                    log.error("ASGI callable returned without starting a response")
                else:
                    log.error("ASGI callable returned without completing its response")
                self._abandon()
        finally:
            state = self.proto.state
            state.tasks.discard(self)
            if state.heartbeat is not None:
                state.heartbeat.request_finished(time.time() - self.started)
            if state.on_drained is not None:
                state.task_done(self)

    def _abandon(self) -> None:
        """The application is done but its response is not: repair or cut (module doc)."""
        phase = self.phase
        if phase == P_DONE or self.disconnected:
            return
        self.phase = P_DONE
        if phase == P_TRAILERS:  # the body is whole: end it without the trailers
            self._write(self.conn.send_end())
            self.proto.response_complete(self)
            return
        self.proto.response_failed(self, 500 if phase <= P_HEAD else 0)

    # ----------------------------------------------------------------- called by the protocol

    def feed(self, data: bytes) -> int:
        """Request body bytes arrived; returns how many are buffered unread."""
        chunks = self.chunks
        if chunks is None:
            self.chunks = [data]
        else:
            chunks.append(data)
        self.buffered += len(data)
        if self.waiters:
            self.wake()
        return self.buffered

    def end_of_input(self) -> None:
        """The client half-closed (or closed: TCP cannot tell) after sending this whole request:
        `receive()` reports ``http.disconnect`` once the body is delivered, so an application
        waiting for one (long poll, event stream) can stop; `send()` still delivers, for a client
        that only half-closed."""
        self.client_eof = True
        if self.waiters:
            self.wake()

    def disconnect(self) -> None:
        self.disconnected = True
        if self.waiters:
            self.wake()

    def wake(self) -> None:
        for waiter in self.waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------------------- receive

    async def receive(self) -> Message:
        if (self.body_done and not self.body_taken and not self.chunks and not self.disconnected
                and self.phase != P_DONE):  # the common case: a request without a body
            self.body_taken = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await self._receive()

    async def _receive(self) -> Message:
        while True:
            if self.disconnected or self.phase == P_DONE:
                return {"type": "http.disconnect"}
            if self.chunks or (self.body_done and not self.body_taken):
                return self._take_body()
            if self.client_eof:
                return {"type": "http.disconnect"}
            if not self.body_done:
                proceed = self.conn.send_continue()
                if proceed:
                    self._write(proceed)
                self.proto.body_wanted()
            waiter = self.proto.loop.create_future()
            waiters = self.waiters
            if waiters is None:
                waiters = self.waiters = []
            waiters.append(waiter)
            try:
                await waiter
            finally:
                waiters.remove(waiter)

    def _take_body(self) -> Message:
        chunks = self.chunks
        if not chunks:
            body = b""
        elif len(chunks) == 1:
            body = chunks[0]
        else:
            body = b"".join(chunks)
        self.chunks = None
        self.buffered = 0
        more = not self.body_done
        if more:
            self.proto.body_consumed()
        else:
            self.body_taken = True
        return {"type": "http.request", "body": body, "more_body": more}

    # ---------------------------------------------------------------------------------- send

    async def send(self, message: Message) -> None:
        mtype = message.get("type")
        phase = self.phase
        if self.disconnected:
            if phase == P_DONE:
                return
            raise ClientDisconnected("the client disconnected")
        if mtype == "http.response.body":
            if phase == P_HEAD:
                self._first_body(message)
            elif phase == P_BODY:
                self._more_body(message)
            elif phase == P_DONE:
                return
            else:
                raise ASGIProtocolError(
                    "'http.response.body' must follow 'http.response.start'"
                    if phase == P_START else "the response body is complete; expected trailers"
                )
        elif mtype == "http.response.start":
            if phase != P_START:
                raise ASGIProtocolError("'http.response.start' sent twice")
            self._start(message)
            return
        elif mtype == "http.response.trailers":
            self._trailers(message)
        elif mtype == "http.response.early_hint":
            self._early_hint(message)
            return
        elif mtype == "http.response.pathsend":
            await self._pathsend(message)
            return
        else:
            raise ASGIProtocolError(f"unexpected ASGI message type {mtype!r} in an HTTP scope")
        proto = self.proto
        if proto.write_paused and self.phase != P_DONE and not proto.closed:
            await proto.drain()
            if self.disconnected:
                raise ClientDisconnected("the client disconnected")

    def _start(self, message: Message) -> None:
        status = message.get("status")
        if type(status) is not int or not 200 <= status <= 999:
            raise ASGIProtocolError(
                f"'http.response.start' needs an int status from 200 to 999, got {status!r}"
            )
        headers = message.get("headers", ())
        extra = self.proto.state.extra_headers
        if extra:
            headers = [*extra, *headers]
        self.status = status
        self.headers = headers
        self.trailers = bool(message.get("trailers", False))
        self.phase = P_HEAD

    def _first_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = _as_bytes(body, "'body'")
        more = message.get("more_body", False)
        conn = self.conn
        status = self.status
        try:
            if not more and not self.trailers:  # the whole body at once: one write, sized
                size = len(body)
                if status == 204 or status == 304 or (not size and self.request.method == b"HEAD"):
                    size = -1
                if not conn.their_done:
                    conn.keep_alive = False  # unread request body: say so, then close
                head = conn.send_response(status, self.headers, size)
                data = conn.send_data(body) if body else b""
                end = conn.send_end()
                self.phase = P_DONE
            else:
                head = conn.send_response(status, self.headers)
                data = conn.send_data(body) if body else b""
                end = b""
                self.phase = P_BODY if more else P_TRAILERS
        except (LocalProtocolError, TypeError, ValueError) as exc:
            raise ASGIProtocolError(f"invalid response: {exc}") from None
        self.sent = len(body) if data else 0  # body bytes on the wire (none for HEAD)
        proto = self.proto
        if not proto.closed:
            if len(data) < _COPY_LIMIT:
                self.transport.write(head + data + end if end else head + data)
            else:
                self.transport.writelines((head, data, end) if end else (head, data))
        if self.phase == P_DONE:
            proto.response_complete(self)

    def _more_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = _as_bytes(body, "'body'")
        more = message.get("more_body", False)
        conn = self.conn
        try:
            out = conn.send_data(body) if body else b""
            if not more:
                if self.trailers:
                    self.phase = P_TRAILERS
                else:
                    out += conn.send_end()
                    self.phase = P_DONE
        except LocalProtocolError as exc:
            raise ASGIProtocolError(f"invalid response: {exc}") from None
        if out:
            self.sent += len(body)
            self._write(out)
        if self.phase == P_DONE:
            self.proto.response_complete(self)

    def _trailers(self, message: Message) -> None:
        if self.phase != P_TRAILERS:
            raise ASGIProtocolError(
                "'http.response.trailers' needs 'trailers': True in 'http.response.start' and "
                "must follow the last body message"
            )
        fields = self.trailer_fields
        if fields is None:
            fields = self.trailer_fields = []
        fields.extend((name, value) for name, value in message.get("headers", ()))
        if message.get("more_trailers", False):
            return
        try:
            out = self.conn.send_end(fields)
        except (LocalProtocolError, TypeError, ValueError) as exc:
            raise ASGIProtocolError(f"invalid trailers: {exc}") from None
        self.phase = P_DONE
        self._write(out)
        self.proto.response_complete(self)

    def _early_hint(self, message: Message) -> None:
        if self.phase != P_START:
            raise ASGIProtocolError("'http.response.early_hint' must come before the response")
        links = message.get("links", ())
        if not links or not self.request.flags & F_HTTP11:
            return  # RFC 9110 section 15.2: no 1xx for an HTTP/1.0 client
        try:
            out = self.conn.send_informational(103, [(b"link", link) for link in links])
        except (LocalProtocolError, TypeError, ValueError) as exc:
            raise ASGIProtocolError(f"invalid early hint: {exc}") from None
        self._write(out)

    async def _pathsend(self, message: Message) -> None:
        if self.phase != P_HEAD:
            raise ASGIProtocolError(
                "'http.response.pathsend' must follow 'http.response.start' (and replace the body)"
            )
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ASGIProtocolError(f"'http.response.pathsend' needs an absolute path, got {path!r}")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ASGIProtocolError(f"'http.response.pathsend': {path!r} is not a regular file")
            size = info.st_size
            # The file's size frames the response: the application's framing fields are dropped.
            headers = [
                (n, v) for n, v in self.headers
                if n.lower() not in (b"content-length", b"transfer-encoding")
            ]
            conn = self.conn
            try:
                head = conn.send_response(self.status, headers, size)
            except (LocalProtocolError, TypeError, ValueError) as exc:
                raise ASGIProtocolError(f"invalid response: {exc}") from None
            self.phase = P_BODY
            if self.request.method == b"HEAD" or self.status in _NO_BODY_STATUS or not size:
                self._write(head)
            else:
                await send_file(self.proto, head, fd, size)
                conn.sent_directly(size)
                self.sent = size
        finally:
            os.close(fd)
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        self._write(self.conn.send_end())
        self.phase = P_DONE
        self.proto.response_complete(self)

    def _write(self, data: bytes) -> None:
        if data and not self.proto.closed:
            self.transport.write(data)

    # ------------------------------------------------------------------------------ logging

    def log_access(self, access_log: AccessLog) -> None:
        request = self.request
        client = self.scope["client"]
        access_log.log(AccessRecord(
            remote_addr=client[0] if client else "",
            remote_port=client[1] if client else None,
            time=self.started,
            method=request.method,
            target=request.target,
            http_version=request.http_version,
            status=self.status,
            body_bytes=self.sent,
            request_headers=request.headers,
            response_headers=list(self.headers),
            duration=time.time() - self.started,
            pid=self.proto.state.pid,
            scheme=self.scope["scheme"],
        ))


__all__ = ["Cycle", "decode_path", "split_target"]
