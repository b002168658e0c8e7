"""``wsgi.input``: the request body, streamed from the connection as the application reads it.

Invariants:
- Never more than the body: reads stop at the end of the Content-Length or at the last chunk, and
  then return b"" (the end-of-file PEP 3333 asks servers to simulate). Bytes after the body belong
  to the next request and stay in the connection's buffer.
- Pull only: the socket is read when the application asks for more and nothing is buffered, at most
  64 KiB at a time, so memory per request is bounded whatever the body size.
- ``Expect: 100-continue`` is answered when the application first reads (and only then): an
  application that answers without reading never makes the client send the body.
- A body the client cannot finish (end of input or a reset mid-body, or silence for ``timeout_body_read``)
  raises `ClientDisconnected`; malformed chunked framing or a body over the size limit raise
  `RequestBodyError` (status 400 / 413). Both are sticky: later reads raise them again. A truncated
  body is never presented as complete.
- ``read(n)`` returns exactly n bytes unless the body ends first (like a buffered file).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Final

from tricorn.core.connection import Connection
from tricorn.core.errors import ProtocolError
from tricorn.core.events import NEED_DATA, ConnectionClosed, Data, EndOfMessage

from .errors import ClientDisconnected, RequestBodyError
from .stream import Stream

_DRAIN_LIMIT: Final = 65536


class Input:
    """A read-only binary file over the request body (``read``, ``readline``, ``readlines``,
    iteration)."""

    __slots__ = ("_conn", "_stream", "_buf", "_pos", "_done", "_asked", "_error", "received")

    def __init__(self, conn: Connection, stream: Stream) -> None:
        self._conn = conn
        self._stream = stream
        self._buf = b""
        self._pos = 0
        self._done = False
        self._asked = False
        self._error: OSError | None = None
        self.received = 0
        """Body bytes taken from the connection so far (read by the app or drained)."""

    # ---------------------------------------------------------------------------------- source

    def _next(self) -> bytes:
        """The next piece of body from the connection; b"" at the end of the body."""
        if self._done:
            return b""
        if self._error is not None:
            raise self._error
        conn = self._conn
        if not self._asked:
            self._asked = True
            cont = conn.send_continue()
            if cont:
                self._stream.sendall(cont)
        try:
            while True:
                ev = conn.next_event()
                t = type(ev)
                if t is Data:
                    data: bytes = ev.data  # type: ignore[union-attr]
                    self.received += len(data)
                    return data
                if ev is NEED_DATA:
                    conn.receive_data(self._stream.recv())
                    continue
                if t is EndOfMessage:
                    self._done = True
                    return b""
                if t is ConnectionClosed:
                    raise ClientDisconnected(errno.ECONNRESET, "client closed the connection "
                                             "before the end of the request body")
                self._done = True  # PAUSED: the request is already complete
                return b""
        except ProtocolError as exc:
            self._error = RequestBodyError(exc.status, exc.reason)
            raise self._error from None
        except ClientDisconnected as exc:
            self._error = exc
            raise

    @property
    def done(self) -> bool:
        """The whole body has been taken from the connection."""
        return self._done

    @property
    def error(self) -> OSError | None:
        """The error reading the body raised, if any."""
        return self._error

    def drain_available(self, limit: int = _DRAIN_LIMIT) -> bool:
        """Discard what is left of the body if it is already here (buffered, or readable without
        waiting), up to `limit` bytes. True if the body is now complete. Never raises."""
        if self._done:
            return True
        if self._error is not None:
            return False
        conn = self._conn
        if conn.request is not None and conn.request.expect_continue and not self._asked:
            return False  # the client waits for 100 Continue: the body is not coming
        self._buf = b""
        self._pos = 0
        try:
            while limit > 0:
                ev = conn.next_event()
                t = type(ev)
                if t is Data:
                    limit -= len(ev.data)  # type: ignore[union-attr]
                    continue
                if ev is NEED_DATA:
                    data = self._stream.recv_nowait()
                    if data is None:
                        return False
                    conn.receive_data(data)
                    continue
                if t is EndOfMessage:
                    self._done = True
                    return True
                return False
        except (ProtocolError, OSError):
            return False
        return False

    # -------------------------------------------------------------------------------- file API

    def read(self, size: int | None = -1) -> bytes:
        buf = self._buf
        pos = self._pos
        if size is None or size < 0:
            parts = [buf[pos:]] if pos < len(buf) else []
            self._buf = b""
            self._pos = 0
            while True:
                data = self._next()
                if not data:
                    return b"".join(parts)
                parts.append(data)
        avail = len(buf) - pos
        if avail >= size:
            if pos == 0 and avail == size:
                self._buf = b""
                return buf
            self._pos = pos + size
            return buf[pos:pos + size]
        if avail == 0:
            data = self._next()
            if len(data) == size or not data:
                return data
            if len(data) > size:
                self._buf = data
                self._pos = size
                return data[:size]
            parts = [data]
            need = size - len(data)
        else:
            parts = [buf[pos:]]
            need = size - avail
        self._buf = b""
        self._pos = 0
        while need > 0:
            data = self._next()
            if not data:
                break
            if len(data) > need:
                self._buf = data
                self._pos = need
                parts.append(data[:need])
                break
            parts.append(data)
            need -= len(data)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        if size is None:
            size = -1
        if size == 0:
            return b""
        buf = self._buf
        pos = self._pos
        end = buf.find(b"\n", pos)
        if end >= 0 and (size < 0 or end - pos < size):
            self._pos = end + 1
            return buf[pos:end + 1]
        if size >= 0 and len(buf) - pos >= size:
            self._pos = pos + size
            return buf[pos:pos + size]
        parts = [buf[pos:]]
        got = len(buf) - pos
        self._buf = b""
        self._pos = 0
        while True:
            data = self._next()
            if not data:
                return b"".join(parts)
            end = data.find(b"\n")
            cut = len(data) if end < 0 else end + 1
            if size >= 0 and got + cut > size:
                cut = size - got
            if cut < len(data):
                self._buf = data
                self._pos = cut
                parts.append(data[:cut])
                return b"".join(parts)
            parts.append(data)
            got += cut
            if end >= 0 or (size >= 0 and got >= size):
                return b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release (the connection outlives the request)."""
