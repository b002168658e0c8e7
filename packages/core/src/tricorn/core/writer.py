"""Response serialisation: status lines, validated header blocks, body framing, the cached Date.

Invariants:
- nothing the application supplies reaches the wire unchecked: field names must be tokens and
  values may not hold CR, LF or NUL (response splitting), the status must be a 3-digit code;
  a violation raises `LocalProtocolError` before any byte is produced;
- the framing headers (Content-Length / Transfer-Encoding / Connection) are the writer's to decide:
  the application's Content-Length is honoured and enforced, its Transfer-Encoding and Connection
  fields are interpreted, not copied;
- the Date field is formatted at most once a second per process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

from .errors import LocalProtocolError

TOKEN_BYTES: Final = (
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status))


STATUS_LINES: Final = {s.value: _status_line(s.value) for s in HTTPStatus}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is not None:
        return line
    if not 100 <= status <= 999:
        raise LocalProtocolError(f"invalid status code {status!r}")
    return _status_line(status)


class DateCache:
    """The `date: ...\\r\\n` field line, formatted once per second."""

    __slots__ = ("_second", "_line")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        return self._line


DATE = DateCache()


def check_field(name: bytes, value: bytes) -> None:
    """Raise LocalProtocolError unless (name, value) may be sent as a field line."""
    if not name or name.translate(None, TOKEN_BYTES):
        raise LocalProtocolError(f"invalid header name {name!r}")
    if b"\r" in value or b"\n" in value or b"\0" in value:
        raise LocalProtocolError(f"invalid header value for {name!r}: CR, LF or NUL")


def field_block(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Validated `name: value\\r\\n` lines (trailers, or a head with no framing fields)."""
    lines = []
    for name, value in headers:
        check_field(name, value)
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    """One chunk of chunked transfer coding (empty data gives no bytes: it would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: Iterable[tuple[bytes, bytes]] | None = None) -> bytes:
    if not trailers:
        return b"0\r\n\r\n"
    return b"0\r\n" + field_block(trailers) + b"\r\n"


def error_response(status: int, server_line: bytes = b"", detail: str = "") -> bytes:
    """A complete, closing response for a protocol error (no application involved)."""
    body = (f"{status} {reason_phrase(status).decode()}" + (f": {detail}" if detail else "")
            + "\n").encode("ascii", "replace")
    return b"".join((
        status_line(status),
        server_line,
        DATE.line(),
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
        body,
    ))
