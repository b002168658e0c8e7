"""Running one request through the WSGI application; shared by the sync and gthread workers.

A worker owns one `Handler` (built from the settings) and, per connection, a `Channel`. It calls
``handler.handle(channel, request)`` for each complete request head, from whichever thread serves
the connection; the answer says whether the connection may carry another request.

Invariants:
- The application's iterable is closed (``close()``) exactly once whenever the application
  returned one: after a complete response, on a client disconnect, on an application error.
- An application error before the head was sent gives a 500 (no traceback to the client), the
  traceback goes to the error log, and the worker goes on. After the head, the connection is closed
  (the response is cut short; the client can tell from the framing).
- A request the server refuses before the application (CONNECT: 405; an underscore header name
  with ``header_map=refuse`` or contradictory proxy scheme headers: 400) never reaches it.
- The access log (when on) gets one line per request that reached the application or was refused
  here; when off it costs one ``is None`` test.
- `handle` never raises for anything the client or the application did; only BaseExceptions that
  are not Exceptions (SystemExit from a quick stop) pass through, after the iterable is closed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from tricorn.core.connection import Connection
from tricorn.core.environ import ConnectionInfo, Environ, EnvironBuilder
from tricorn.core.errors import LocalProtocolError
from tricorn.core.events import F_AUTHORITY_FORM, F_UNDERSCORE_NAME, Request
from tricorn.core.logs import AccessLog, AccessRecord, escape_bytes
from tricorn.core.proxy import ProxyHeaderError
from tricorn.core.worker import Heartbeat, Hooks, NullHeartbeat
from tricorn.core.writer import error_response

from .errors import ClientDisconnected, RequestBodyError, WSGIError
from .filewrapper import FileWrapper
from .input import Input
from .response import Response
from .stream import SendfileUnsupported, Stream

WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger("tricorn.error")

_INTERNAL_ERROR: Final = b"Internal Server Error\n"
_PLAIN: Final = (b"content-type", b"text/plain; charset=utf-8")
_monotonic = time.monotonic


class Channel:
    """One client connection as the handler sees it."""

    __slots__ = ("sock", "stream", "conn", "info")

    def __init__(
        self, sock: socket.socket, stream: Stream, conn: Connection, info: ConnectionInfo
    ) -> None:
        self.sock = sock
        self.stream = stream
        self.conn = conn
        self.info = info


class Handler:
    """Turns requests into application calls and responses (one per worker process)."""

    def connection(self, limits: object) -> Connection:
        """A sans-I/O connection with this handler's Server and Date settings."""
        return Connection(limits, server_line=self.server_line, date_header=self.date_header)

    def __init__(
        self,
        app: WSGIApp,
        builder: EnvironBuilder,
        *,
        server_line: bytes = b"server: tricorn\r\n",
        date_header: bool = True,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        access_log: AccessLog | None = None,
        sendfile: bool = True,
        persistent: bool = True,
        refuse_underscore: bool = False,
        heartbeat: Heartbeat | None = None,
        hooks: Hooks | None = None,
        hook_worker: object = None,
    ) -> None:
        self.app = app
        self.builder = builder
        self.server_line = server_line
        self.date_header = date_header
        self.extra_headers = extra_headers or []
        self.access_log = access_log
        self.sendfile = sendfile
        self.persistent = persistent
        """Keep connections alive between requests (gthread); False: only for pipelined ones."""
        self.refuse_underscore = refuse_underscore
        self.closing = False
        """The worker is stopping: every response says ``Connection: close``."""
        self.heartbeat: Heartbeat = heartbeat if heartbeat is not None else NullHeartbeat()
        self._counting = not isinstance(self.heartbeat, NullHeartbeat)
        self._hooks = hooks
        self._hook_worker = hook_worker
        self._pre = hooks is not None and "pre_request" in hooks
        self._post = hooks is not None and "post_request" in hooks
        self.pid = os.getpid()

    # ------------------------------------------------------------------------------- refusals

    def refuse(self, ch: Channel, status: int, detail: str, req: Request | None = None) -> bool:
        """Answer `status` (closing) without the application; False (close the connection)."""
        ch.conn.keep_alive = False
        try:
            ch.stream.sendall(error_response(status, self.server_line, detail))
        except ClientDisconnected:
            pass
        if req is not None and self.access_log is not None:
            self._log_access(ch, req, None, status, 0, [], _monotonic(), time.time())
        return False

    # -------------------------------------------------------------------------------- requests

    def handle(self, ch: Channel, req: Request) -> bool:
        """Serve `req`; True if the connection may carry another request."""
        flags = req.flags
        if flags & F_AUTHORITY_FORM:
            return self.refuse(ch, 405, "CONNECT is not supported", req)
        if flags & F_UNDERSCORE_NAME and self.refuse_underscore:
            return self.refuse(ch, 400, "header name with an underscore", req)
        try:
            environ = self.builder.build(ch.info, req)
        except ProxyHeaderError as exc:
            return self.refuse(ch, 400, str(exc), req)
        conn = ch.conn
        stream = ch.stream
        inp = Input(conn, stream)
        environ["wsgi.input"] = inp
        resp = Response(self, conn, stream, inp, req.method == b"HEAD")
        access = self.access_log
        start = _monotonic() if (access is not None or self._counting) else 0.0
        wall = time.time() if access is not None else 0.0
        if self._counting:
            self.heartbeat.request_started()
        if self._pre and self._hooks is not None:
            self._hooks.call("pre_request", self._hook_worker, req)
        ok = True
        result: Any = None
        try:
            result = self.app(environ, resp.start_response)
            kind = type(result)
            if (kind is list or kind is tuple) and not resp.head_sent and resp.status is not None:
                if len(result) == 1:
                    body = result[0]
                else:
                    body = b"".join(result)  # TypeError for non-bytes items
                if type(body) is not bytes:
                    raise WSGIError(f"response body items must be bytes, not {type(body).__name__}")
                resp.send_whole(body)
            elif kind is FileWrapper and self.sendfile and not resp.is_head and not stream.tls:
                self._send_file(resp, result)
            else:
                is_head = resp.is_head
                for data in result:
                    if data:
                        resp.write(data)
                        if is_head:
                            break
                resp.finish()
        except ClientDisconnected as exc:
            ok = False
            log.debug("client %s went away: %s", environ.get("REMOTE_ADDR"), exc)
        except RequestBodyError as exc:
            ok = False
            if not resp.head_sent:
                resp.status = exc.status
                self.refuse(ch, exc.status, exc.reason)
        except Exception:
            ok = False
            log.exception("error handling %s %s", escape_bytes(req.method),
                          escape_bytes(req.target))
            if not resp.head_sent:
                resp.status = 500
                resp.headers = [_PLAIN]
                resp.sent = len(_INTERNAL_ERROR)
                self._internal_error(ch)
        finally:
            if result is not None:
                close = getattr(result, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:
                        ok = False
                        log.exception("error closing the response iterable of %s %s",
                                      escape_bytes(req.method), escape_bytes(req.target))
            if self._counting:
                self.heartbeat.request_finished(_monotonic() - start)
        if self._post and self._hooks is not None:
            self._hooks.call("post_request", self._hook_worker, req, environ, resp)
        if access is not None:
            self._log_access(ch, req, environ, resp.status or 500, resp.sent, resp.headers,
                             start, wall)
        return ok and conn.keep_alive

    def _internal_error(self, ch: Channel) -> None:
        conn = ch.conn
        conn.keep_alive = False
        try:
            out = conn.send_full_response(500, [_PLAIN], _INTERNAL_ERROR)
        except LocalProtocolError:
            out = error_response(500, self.server_line)
        try:
            ch.stream.sendall(out)
        except ClientDisconnected:
            pass

    def _send_file(self, resp: Response, wrapper: FileWrapper) -> None:
        """A wsgi.file_wrapper response: the head, then the file with os.sendfile()."""
        span = wrapper.sendfile_span() if resp.status is not None else None
        if span is None:
            for data in wrapper:
                resp.write(data)
            resp.finish()
            return
        fd, offset, left = span
        content_length = -1
        if resp.length < 0:
            content_length = resp.length = left
        count = min(resp.length, left)
        inp = resp._input
        if not inp.done:
            inp.drain_available()
        resp.send_head_now(content_length)
        stream = resp._stream
        try:
            sent = stream.sendfile(fd, offset, count)
        except SendfileUnsupported:
            pos, end = offset, offset + count
            while pos < end:
                data = os.pread(fd, min(65536, end - pos), pos)
                if not data:
                    break
                resp.write(data)
                pos += len(data)
            resp.finish()  # a short file leaves the length unmet: the connection closes
            return
        resp.account_external(sent)
        if sent < resp.length:
            resp._conn.keep_alive = False  # the file was shorter than the Content-Length
        resp.finish()

    # ------------------------------------------------------------------------------ access log

    def _log_access(
        self,
        ch: Channel,
        req: Request,
        environ: Environ | None,
        status: int,
        sent: int,
        headers: list[tuple[bytes, bytes]],
        start: float,
        wall: float,
    ) -> None:
        access = self.access_log
        if access is None:
            return
        env = environ if environ is not None else ch.info.base
        port = env.get("REMOTE_PORT")
        record = AccessRecord(
            remote_addr=env.get("REMOTE_ADDR", ""),
            remote_port=int(port) if port else None,
            time=wall or time.time(),
            method=req.method,
            target=req.target,
            http_version=req.http_version,
            status=status,
            body_bytes=sent,
            request_headers=req.headers,
            response_headers=headers,
            duration=_monotonic() - start if start else 0.0,
            pid=self.pid,
            scheme=env.get("wsgi.url_scheme", "http"),
            extras=environ,
        )
        access.log(record)
