"""One WSGI response: ``start_response``, the ``write`` callable, and sending the body.

Invariants:
- The head is sent with the first non-empty body bytes (or at the end, PEP 3333): until then
  ``start_response`` may be called again with ``exc_info`` to replace status and headers; after it,
  such a call re-raises the application's exception (and the connection is closed).
- Application headers are checked before anything is sent: native strings only, latin-1 only,
  no hop-by-hop fields (RFC 9110 section 7.6.1) except ``Connection: close``, which asks for the
  connection to be closed after the response. Names must be tokens and values free of CR/LF/NUL
  (checked by the core writer). A violation is a `WSGIError` and the client gets a 500.
- Framing is the core connection's: the application's Content-Length is honoured and never
  exceeded (longer bodies are cut and the connection closed; shorter ones close the connection);
  without one, a body given as a list gets a Content-Length, a streamed body is chunked (HTTP/1.1)
  or delimited by closing (HTTP/1.0). HEAD responses carry no body bytes.
- Before the head goes out, the connection's persistence is settled: closing when the server
  stops or the worker does not keep connections alive, when the application asked for it, or when
  the client still waits for ``100 Continue``. At the end of the response an unread request body is
  discarded if it is already here; otherwise the connection closes.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Final

from tricorn.core.connection import Connection

from .errors import WSGIError
from .input import Input
from .stream import Stream

if TYPE_CHECKING:
    from .handler import Handler

HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
_NO_BODY_STATUS: Final = frozenset({204, 304})
# What start_response does with a (lower-case) header name; absent: pass it on.
_HOP, _LENGTH = 1, 2
_NAME_KIND: Final = {**{name: _HOP for name in HOP_BY_HOP}, "content-length": _LENGTH}
_STATUS_CACHE: dict[str, int] = {}
_STATUS_CACHE_MAX: Final = 256
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def parse_status(status: object) -> int:
    """The code of a WSGI status string ("200 OK"); WSGIError unless it is 3 digits (200-999)
    followed by a space and a reason, or alone."""
    if type(status) is not str:
        raise WSGIError(f"status must be a str, not {type(status).__name__}")
    code = status[:3]
    if not (code.isdigit() and code.isascii()) or (len(status) > 3 and status[3] != " "):
        raise WSGIError(f"invalid status {status!r}: expected '200 OK'")
    value = int(code)
    if value < 200:
        raise WSGIError(f"status {status!r}: 1xx responses cannot be sent through start_response")
    if "\r" in status or "\n" in status or "\0" in status:
        raise WSGIError(f"invalid status {status!r}")
    return value


class Response:
    """The response side of one request (one per request, not reused)."""

    __slots__ = (
        "_handler", "_conn", "_stream", "_input", "is_head",
        "status", "headers", "length", "sent", "head_sent", "close",
    )

    def __init__(
        self, handler: Handler, conn: Connection, stream: Stream, inp: Input, is_head: bool
    ) -> None:
        self._handler = handler
        self._conn = conn
        self._stream = stream
        self._input = inp
        self.is_head = is_head
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.length = -1
        """The Content-Length the application declared (or we set), -1 if none."""
        self.sent = 0
        """Body bytes handed to the connection (not counting chunk framing)."""
        self.head_sent = False
        self.close = False

    # ------------------------------------------------------------------------ the WSGI callable

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> object:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise WSGIError("start_response() called again without exc_info")
        code = _STATUS_CACHE.get(status) if type(status) is str else None
        if code is None:
            code = parse_status(status)
            if len(_STATUS_CACHE) < _STATUS_CACHE_MAX:
                _STATUS_CACHE[status] = code
        if type(headers) is not list and not isinstance(headers, list):
            raise WSGIError(f"response headers must be a list, not {type(headers).__name__}")
        out: list[tuple[bytes, bytes]] = []
        length = -1
        close = False
        for item in headers:
            if type(item) is not tuple or len(item) != 2:
                raise WSGIError(f"a response header must be a (name, value) tuple: {item!r}")
            name, value = item
            if type(name) is not str or type(value) is not str:
                raise WSGIError(f"response header {item!r}: name and value must be str")
            kind = _NAME_KIND.get(name.lower())
            if kind is not None:
                if kind == _HOP:
                    if name.lower() == "connection" and value.strip().lower() == "close":
                        close = True
                        continue
                    raise WSGIError(f"hop-by-hop header {name!r} is not allowed in a WSGI "
                                    "response")
                text = value.strip()
                if text.isdigit() and text.isascii():
                    length = int(text)
            try:
                out.append((name.encode("latin-1"), value.encode("latin-1")))
            except UnicodeEncodeError:
                raise WSGIError(f"response header {item!r} is not latin-1") from None
        self.status = code
        self.headers = out
        self.length = length
        self.close = close
        return self.write

    # ------------------------------------------------------------------------------------ head

    def _head(self, content_length: int = -1) -> bytes:
        """The serialized head, after settling persistence (see the module invariants).
        `content_length` frames the body when the application declared no length."""
        conn = self._conn
        handler = self._handler
        if self.status is None:
            raise WSGIError("the application did not call start_response()")
        if handler.closing or self.close:
            conn.keep_alive = False
        elif not handler.persistent and not (conn.their_done and conn.buffered):
            conn.keep_alive = False  # sync worker: keep only for requests already pipelined
        if conn.keep_alive and not conn.their_done:
            req = conn.request
            if req is not None and req.expect_continue and not self._input._asked:
                conn.keep_alive = False  # the client waits for 100 Continue: it won't send
        headers = self.headers
        if handler.extra_headers:
            headers = headers + handler.extra_headers
        head = conn.send_response(self.status, headers, content_length)
        self.head_sent = True
        return head

    def _cut(self, data: bytes) -> tuple[bytes, bool]:
        if self.length >= 0:
            left = self.length - self.sent
            if len(data) > left:
                return data[:left], True
        return data, False

    # ------------------------------------------------------------------------------------ body

    def write(self, data: bytes) -> None:
        """The write() callable, and the path for each item of a streamed response."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise WSGIError(f"response body items must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if self.status is None:
            raise WSGIError("write() called before start_response()")
        if not data:
            return
        data, overflow = self._cut(data)
        conn = self._conn
        if not self.head_sent:
            head = self._head()
            body = conn.send_data(data) if data else b""
            if body:
                self._stream.sendv((head, body))
            else:
                self._stream.sendall(head)
        else:
            out = conn.send_data(data)
            if out:
                self._stream.sendall(out)
        if not self.is_head:
            self.sent += len(data)
        if overflow:
            conn.keep_alive = False
            raise WSGIError(f"response body longer than its Content-Length ({self.length})")

    def send_whole(self, body: bytes) -> None:
        """The whole response at once (a list/tuple result): head, body and end in one send."""
        if self.status is None:
            raise WSGIError("the application did not call start_response()")
        overflow = False
        content_length = -1
        if self.length < 0:
            if self.status not in _NO_BODY_STATUS and (body or not self.is_head):
                content_length = self.length = len(body)
        else:
            body, overflow = self._cut(body)
        conn = self._conn
        if not conn.their_done:
            self._input.drain_available()
        head = self._head(content_length)
        data = conn.send_data(body) if body else b""
        if overflow:
            conn.keep_alive = False
        end = conn.send_end()
        if data:
            self._stream.sendv((head, data, end) if end else (head, data))
        else:
            self._stream.sendall(head + end if end else head)
        if not self.is_head:
            self.sent = len(body)
        if overflow:
            raise WSGIError(f"response body longer than its Content-Length ({self.length})")

    def finish(self) -> None:
        """End the response (sending the head if no body byte went out)."""
        conn = self._conn
        if not conn.their_done:
            self._input.drain_available()
        if not self.head_sent:
            content_length = -1
            if (self.length < 0 and not self.is_head and self.status is not None
                    and self.status not in _NO_BODY_STATUS):
                content_length = self.length = 0
            head = self._head(content_length)
            end = conn.send_end()
            self._stream.sendall(head + end if end else head)
            return
        end = conn.send_end()
        if end:
            self._stream.sendall(end)

    def account_external(self, count: int) -> None:
        """`count` body bytes were sent by the caller directly (os.sendfile)."""
        self._conn.sent_directly(count)
        if not self.is_head:
            self.sent += count

    def send_head_now(self, content_length: int = -1) -> None:
        """Send the head alone (before a body the caller sends itself)."""
        self._stream.sendall(self._head(content_length))
