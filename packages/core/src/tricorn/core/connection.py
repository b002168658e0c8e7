"""The sans-I/O server side of one HTTP/1.1 connection: the only HTTP/1.1 implementation in tricorn.

Bytes go in with `receive_data()` (b"" for end of input) and come out of `next_event()` as events:
`Request`, `Data`..., `EndOfMessage`, then `PAUSED` until the response is complete and
`start_next_cycle()` has been called; `NEED_DATA` when more input is needed; `ConnectionClosed` at end
of input. The response goes out as bytes from `send_response()`, `send_data()` and `send_end()` (or
`send_full_response()`, one write). Nothing here touches a socket: the WSGI worker drives it in pull
style, the ASGI protocol in push style.

Theory of operation
- Their side (the client's) moves IDLE -> BODY -> DONE per request; `ERROR` is sticky after a
  `ProtocolError` (the server sends `error_response()` and closes). Bytes after a request stay in the
  buffer (pipelining) and are parsed only after `start_next_cycle()`, so responses keep request order.
- Our side moves IDLE -> SENDING -> DONE. `start_next_cycle()` needs both sides DONE and the
  connection to be persistent (`keep_alive`); otherwise the server closes.
- Persistence is decided from the request (HTTP version, Connection tokens), the response (the
  application's `connection: close`, a body delimited by closing), and the body (a request body not
  fully received when the response ends forces a close unless the server drains it first).
- The input buffer is the received `bytes` object itself while one recv() holds the whole request
  (no copy); only a request split across reads is accumulated in a `bytearray`. `buffered` tells the
  server how much unread input is held, to pause reading.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

from .errors import LocalProtocolError, ProtocolError
from .events import (
    END_OF_MESSAGE,
    F_CHUNKED,
    F_EXPECT_CONTINUE,
    F_HTTP11,
    F_KEEP_ALIVE,
    F_LENGTH,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    Request,
)
from .limits import ParserLimits
from .parser import ChunkedDecoder, CLimits, HeadParser, c_limits
from .writer import DATE, TOKEN_BYTES, chunk, last_chunk, status_line

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_new = tuple.__new__


class Their(enum.Enum):
    IDLE = "idle"  # waiting for a request head
    BODY_LENGTH = "body (content-length)"
    BODY_CHUNKED = "body (chunked)"
    TRAILERS = "trailers"
    BODY_END = "end of body"  # the body is complete; EndOfMessage not yet returned
    DONE = "done"  # request complete; waiting for start_next_cycle()
    CLOSED = "closed"  # end of input
    UPGRADED = "upgraded"  # switched protocols: bytes are no longer HTTP/1.1
    ERROR = "error"


class Ours(enum.Enum):
    IDLE = "idle"
    SENDING = "sending"
    DONE = "done"


class Framing(enum.Enum):
    NONE = "no body"  # HEAD, 1xx, 204, 304
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "close-delimited"  # HTTP/1.0 client, no length: the end of the body is our close


_NO_BODY_STATUS: Final = frozenset({204, 304})

# Enum member lookups (``Their.IDLE``) search the enum class each time (about 0.2 us on 3.11); the
# per-request paths below use these module constants, which are the very same members.
_IDLE: Final = Their.IDLE
_BODY_LENGTH: Final = Their.BODY_LENGTH
_BODY_CHUNKED: Final = Their.BODY_CHUNKED
_TRAILERS: Final = Their.TRAILERS
_BODY_END: Final = Their.BODY_END
_DONE: Final = Their.DONE
_CLOSED: Final = Their.CLOSED
_UPGRADED: Final = Their.UPGRADED
_ERROR: Final = Their.ERROR
_OURS_IDLE: Final = Ours.IDLE
_SENDING: Final = Ours.SENDING
_OURS_DONE: Final = Ours.DONE
_NONE: Final = Framing.NONE
_LENGTH: Final = Framing.LENGTH
_CHUNKED: Final = Framing.CHUNKED
_CLOSE: Final = Framing.CLOSE

_Head = tuple[bytes, bytes, int, bool, bool, bool, bool]
"""A validated response head without its framing: status line, field lines, Content-Length (-1),
chunked asked, Connection: close asked, own Server field, own Date field."""

_HEADS: dict[tuple[object, ...], _Head] = {}
_HEADS_MAX: Final = 256
"""Validated heads by (status, *fields): applications repeat the same few heads, so validating
each field once (not once per response) keeps `send_response` cheap. Bounded; cleared when full."""


def _compile_head(status: int, headers: Iterable[tuple[bytes, bytes]]) -> _Head:
    """Validate and serialise the application's part of a head (raises LocalProtocolError)."""
    first = status_line(status)
    lines = []
    length = -1
    app_chunked = close = own_server = own_date = False
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            if not value.isdigit() or length >= 0:
                raise LocalProtocolError(f"invalid content-length {value!r}")
            length = int(value)
            continue
        if lname == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise LocalProtocolError(f"unsupported transfer-encoding {value!r}")
            app_chunked = True
            continue
        if lname == b"connection":
            if b"close" in value.lower():
                close = True
            continue
        if lname == b"server":
            own_server = True
        elif lname == b"date":
            own_date = True
        if not name or name.translate(None, TOKEN_BYTES):
            raise LocalProtocolError(f"invalid header name {name!r}")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise LocalProtocolError(f"invalid header value for {name!r}: CR, LF or NUL")
        lines.append(b"%s: %s\r\n" % (name, value))
    return first, b"".join(lines), length, app_chunked, close, own_server, own_date


class Connection:
    """One client connection, from the server's side. Not thread-safe: one driver at a time."""

    __slots__ = (
        "_parser", "_chunks", "_c_limits", "_buf", "_pos", "_eof", "_remaining",
        "their_state", "our_state", "request", "keep_alive", "closing",
        "_framing", "_out_remaining", "_continue_sent", "server_line", "date_header",
    )

    def __init__(self, limits: ParserLimits | CLimits, *, server_line: bytes = b"",
                 date_header: bool = True) -> None:
        """`limits` is a ParserLimits or a shared `c_limits()` pointer (one per server).
        `server_line` is the `server: ...\\r\\n` field line added to every response (or b"");
        `date_header` adds the cached `date` field. Either default is left out of a response whose
        application headers carry their own `server` / `date` field."""
        self._c_limits = c_limits(limits) if isinstance(limits, ParserLimits) else limits
        self._parser = HeadParser(self._c_limits)
        self._chunks: ChunkedDecoder | None = None
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._eof = False
        self._remaining = 0
        self.their_state = _IDLE
        self.our_state = _OURS_IDLE
        self.request: Request | None = None
        self.keep_alive = True
        self.closing = False  # the server is shutting down: no more persistent responses
        self._framing = _NONE
        self._out_remaining = 0
        self._continue_sent = False
        self.server_line = server_line
        self.date_header = date_header

    # ---------------------------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; b"" means the peer closed its sending side."""
        if not data:
            self._eof = True
            return
        buf = self._buf
        if self._pos == len(buf):
            self._buf = data  # nothing unread: keep the received object itself
            self._pos = 0
        elif type(buf) is bytes:
            grown = bytearray(buf)
            grown += data
            self._buf = grown
        else:
            buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf) - self._pos

    @property
    def their_done(self) -> bool:
        """The whole request, body included, has been received."""
        return self.their_state is _DONE or self.their_state is _BODY_END

    def next_event(self) -> Event:
        """The next event, NEED_DATA or PAUSED. Raises ProtocolError on bad input (sticky)."""
        state = self.their_state
        if state is _IDLE:
            return self._next_request()
        if state is _BODY_LENGTH:
            return self._next_length_data()
        if state is _BODY_END:
            self.their_state = _DONE
            return END_OF_MESSAGE
        if state is _BODY_CHUNKED or state is _TRAILERS:
            return self._next_chunked()
        if state is _DONE or state is _UPGRADED:
            return PAUSED
        if state is _CLOSED:
            return ConnectionClosed(self.request is None)
        raise ProtocolError(400, "connection_in_error_state")

    def _next_request(self) -> Event:
        buf = self._buf
        pos = self._pos
        if pos == len(buf):
            if self._eof:
                self.their_state = _CLOSED
                return ConnectionClosed(True)
            return NEED_DATA
        try:
            req = self._parser.parse(buf, pos)
        except ProtocolError:
            self.their_state = _ERROR
            self.keep_alive = False
            raise
        if req is None:
            if self._eof:
                self.their_state = _ERROR
                self.keep_alive = False
                raise ProtocolError(400, "incomplete_request")
            return NEED_DATA
        self._pos = pos + self._parser.length
        self.request = req
        flags = req.flags
        self.keep_alive = bool(flags & F_KEEP_ALIVE) and not self.closing
        if flags & F_CHUNKED:
            chunks = self._chunks
            if chunks is None:
                chunks = self._chunks = ChunkedDecoder(self._c_limits)
            else:
                chunks.reset()
            self.their_state = _BODY_CHUNKED
        elif flags & F_LENGTH and req.content_length:
            self._remaining = req.content_length
            self.their_state = _BODY_LENGTH
        else:
            self.their_state = _BODY_END
        return req

    def _next_length_data(self) -> Event:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail == 0:
            return self._body_eof()
        n = avail if avail < self._remaining else self._remaining
        if type(buf) is bytes:
            data = buf if pos == 0 and n == len(buf) else buf[pos:pos + n]
        else:
            data = bytes(memoryview(buf)[pos:pos + n])
        self._pos = pos + n
        self._remaining -= n
        if not self._remaining:
            self.their_state = _BODY_END
        return _new(Data, (data,))

    def _next_chunked(self) -> Event:
        chunks = self._chunks
        if chunks is None:  # cannot happen: set with BODY_CHUNKED
            raise ProtocolError(500, "no_chunked_decoder")
        try:
            if self.their_state is _BODY_CHUNKED:
                data, consumed, done = chunks.decode(self._buf, self._pos)
                self._pos += consumed
                if done:
                    self.their_state = _TRAILERS
                if data:
                    return _new(Data, (data,))
                if not done:
                    return self._body_eof()
            if self._pos == len(self._buf):
                # Nothing to parse yet. (The parser keeps offsets into the buffer between calls,
                # so it is only ever called with unread bytes, which receive_data() keeps in place.)
                return self._body_eof()
            trailers = self._parser.parse_trailers(self._buf, self._pos)
        except ProtocolError:
            self.their_state = _ERROR
            self.keep_alive = False
            raise
        if trailers is None:
            return self._body_eof()
        self._pos += self._parser.length
        self.their_state = _DONE
        return EndOfMessage(trailers) if trailers else END_OF_MESSAGE

    def _body_eof(self) -> Event:
        if self._eof:
            self.their_state = _CLOSED
            self.keep_alive = False
            return ConnectionClosed(False)
        return NEED_DATA

    # ---------------------------------------------------------------------------------- output

    def send_continue(self) -> bytes:
        """`100 Continue` when the client waits for it (call when the app first reads the body)."""
        req = self.request
        if (req is None or self._continue_sent or self.our_state is not _OURS_IDLE
                or not req.flags & F_EXPECT_CONTINUE or self.their_done):
            return b""
        self._continue_sent = True
        return CONTINUE

    def send_response(self, status: int, headers: Iterable[tuple[bytes, bytes]],
                      content_length: int = -1) -> bytes:
        """The response head. Field names may be any case; framing fields are interpreted.

        `content_length` is the body's size when the server already holds the whole body: it frames
        the response unless the headers carry a Content-Length (or ask for chunked) themselves."""
        req = self.request
        if req is None or self.our_state is not _OURS_IDLE:
            raise LocalProtocolError("no request to respond to, or a response was already started")
        if status < 200:
            raise LocalProtocolError("informational responses go through send_informational()")
        key = (status, *headers)
        try:
            head = _HEADS.get(key)
            cacheable = True
        except TypeError:  # unhashable items (lists, bytearrays): validate without caching
            head = None
            cacheable = False
        if head is None:
            head = _compile_head(status, key[1:])  # type: ignore[arg-type]
            if cacheable:
                if len(_HEADS) >= _HEADS_MAX:
                    _HEADS.clear()
                _HEADS[key] = head
        first, fields, length, app_chunked, close, own_server, own_date = head
        if close:
            self.keep_alive = False
        lines = [first, b"" if own_server else self.server_line,
                 DATE.line() if self.date_header and not own_date else b"", fields]
        http11 = req.flags & F_HTTP11
        if length < 0 and content_length >= 0 and not app_chunked:
            length = content_length
        if req.method == b"HEAD":
            framing = _NONE
            if length >= 0:
                lines.append(b"content-length: %d\r\n" % length)
        elif status in _NO_BODY_STATUS:
            framing = _NONE
            if status == 304 and length >= 0:
                lines.append(b"content-length: %d\r\n" % length)
        elif length >= 0 and not app_chunked:
            framing = _LENGTH
            self._out_remaining = length
            lines.append(b"content-length: %d\r\n" % length)
        elif http11:
            framing = _CHUNKED
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            framing = _CLOSE
            self.keep_alive = False
        self._framing = framing
        if self.closing:
            self.keep_alive = False
        if not self.keep_alive:
            lines.append(b"connection: close\r\n\r\n")
        elif not http11:
            lines.append(b"connection: keep-alive\r\n\r\n")
        else:
            lines.append(b"\r\n")
        self.our_state = _SENDING
        return b"".join(lines)

    def send_informational(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """A 1xx response (103 Early Hints, 101 Switching Protocols) before the final one."""
        if not 100 <= status < 200 or self.our_state is not _OURS_IDLE:
            raise LocalProtocolError("an informational response needs a 1xx status, before the final")
        lines = [status_line(status)]
        for name, value in headers:
            if not name or name.translate(None, TOKEN_BYTES) or b"\r" in value \
                    or b"\n" in value or b"\0" in value:
                raise LocalProtocolError(f"invalid header {name!r}")
            lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        if status == 101:
            self.their_state = _UPGRADED
            self.our_state = _OURS_DONE
            self.keep_alive = False
        return b"".join(lines)

    def send_data(self, data: bytes) -> bytes:
        """Body bytes, framed. Sending more than a declared Content-Length raises."""
        framing = self._framing
        if self.our_state is not _SENDING:
            raise LocalProtocolError("send_data() outside a response")
        if framing is _CHUNKED:
            return chunk(data)
        if framing is _LENGTH:
            if len(data) > self._out_remaining:
                self.keep_alive = False
                raise LocalProtocolError("response body longer than its content-length")
            self._out_remaining -= len(data)
            return data
        if framing is _CLOSE:
            return data
        return b""

    def sent_directly(self, count: int) -> None:
        """Account for `count` body bytes the server wrote itself (os.sendfile) instead of through
        `send_data`. Only for a body framed by Content-Length (overrunning it raises) or by
        closing, or no body with `count` 0; raises LocalProtocolError otherwise."""
        if self.our_state is not _SENDING:
            raise LocalProtocolError("sent_directly() outside a response")
        framing = self._framing
        if framing is _LENGTH:
            if count > self._out_remaining:
                self.keep_alive = False
                raise LocalProtocolError("response body longer than its content-length")
            self._out_remaining -= count
        elif framing is _CHUNKED or (framing is _NONE and count):
            raise LocalProtocolError(f"cannot write raw body bytes with {framing.value} framing")

    def send_end(self, trailers: Iterable[tuple[bytes, bytes]] | None = None) -> bytes:
        """The end of the response. A body shorter than its Content-Length forces a close."""
        if self.our_state is not _SENDING:
            raise LocalProtocolError("send_end() outside a response")
        self.our_state = _OURS_DONE
        framing = self._framing
        if framing is _CHUNKED:
            return last_chunk(trailers)
        if framing is _LENGTH and self._out_remaining:
            self.keep_alive = False
        if not self.their_done:
            self.keep_alive = False  # unread request body: the server must drain or close
        return b""

    def send_full_response(self, status: int, headers: list[tuple[bytes, bytes]],
                           body: bytes) -> bytes:
        """Head and body in one write, with content-length set from the body."""
        headers = [h for h in headers if h[0].lower() != b"content-length"]
        headers.append((b"content-length", b"%d" % len(body)))
        out = self.send_response(status, headers) + self.send_data(body) + self.send_end()
        return out

    # ------------------------------------------------------------------------------- lifecycle

    def start_next_cycle(self) -> None:
        """Forget the finished request and response; the next request can be parsed."""
        if not self.their_done or self.our_state is not _OURS_DONE:
            raise LocalProtocolError("start_next_cycle() before both sides are done")
        if not self.keep_alive:
            raise LocalProtocolError("the connection is not persistent: close it")
        self.their_state = _IDLE
        self.our_state = _OURS_IDLE
        self.request = None
        self._continue_sent = False
        self._framing = _NONE
        buf = self._buf
        if self._pos == len(buf):
            self._buf = b""
            self._pos = 0
        elif type(buf) is bytearray and self._pos > 65536:
            del buf[:self._pos]
            self._pos = 0

    def trailing_data(self) -> bytes:
        """After an upgrade: the bytes received beyond the request head (the new protocol's)."""
        data = bytes(memoryview(self._buf)[self._pos:])
        self._buf = b""
        self._pos = 0
        return data

    def headers_of(self, name: bytes) -> Headers:
        """All (name, value) pairs of the current request with this (lower-case) name."""
        req = self.request
        return [h for h in req.headers if h[0] == name] if req is not None else []
