"""Events of the sans-I/O HTTP/1.1 connection (tricorn.core.connection).

A request arrives as one `Request`, then zero or more `Data`, then one `EndOfMessage`. `NEED_DATA`
and `PAUSED` are the two "nothing yet" answers of `Connection.next_event`. Events are tuples (built
without running Python-level constructors on the hot path), so they are cheap and immutable.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

# Request.flags bits, mirrored from csrc/tricorn_http.h (checked against the C values by a test).
F_HTTP11 = 1
F_KEEP_ALIVE = 2
F_CHUNKED = 4
F_LENGTH = 8
F_EXPECT_CONTINUE = 16
F_UPGRADE = 32
F_CONN_CLOSE = 64
F_CONN_KEEP_ALIVE = 128
F_UPGRADE_FIELD = 256
F_ABSOLUTE_FORM = 512
F_ASTERISK_FORM = 1024
F_AUTHORITY_FORM = 2048
F_UNDERSCORE_NAME = 4096
F_HOST = 8192
F_TE_FIELD = 16384

Headers = list[tuple[bytes, bytes]]


class Request(NamedTuple):
    """A request head. Field names are lower-case bytes; values have no surrounding whitespace."""

    method: bytes
    target: bytes
    http_version: str  # "1.0" or "1.1"
    headers: Headers
    flags: int
    content_length: int  # meaningful with F_LENGTH

    @property
    def keep_alive(self) -> bool:
        return bool(self.flags & F_KEEP_ALIVE)

    @property
    def chunked(self) -> bool:
        return bool(self.flags & F_CHUNKED)

    @property
    def has_body(self) -> bool:
        return bool(self.flags & F_CHUNKED) or (
            bool(self.flags & F_LENGTH) and self.content_length > 0
        )

    @property
    def expect_continue(self) -> bool:
        return bool(self.flags & F_EXPECT_CONTINUE)

    @property
    def upgrade(self) -> bytes | None:
        """The Upgrade field value when the client asks to switch protocols, else None."""
        if not self.flags & F_UPGRADE:
            return None
        for name, value in self.headers:
            if name == b"upgrade":
                return value
        return None

    def get(self, name: bytes) -> bytes | None:
        """The first value of field `name` (lower-case), or None."""
        for n, v in self.headers:
            if n == name:
                return v
        return None


class Data(NamedTuple):
    """A piece of the request body, in order."""

    data: bytes


class EndOfMessage(NamedTuple):
    """The request body is complete. `trailers` holds the trailer fields of a chunked body."""

    trailers: Headers


class ConnectionClosed(NamedTuple):
    """The peer closed its sending side. `complete` is False when it did so inside a request."""

    complete: bool


class Signal(enum.Enum):
    NEED_DATA = "need data"  # feed more bytes with receive_data()
    PAUSED = "paused"  # a request is in flight: answer it, then call start_next_cycle()


NEED_DATA = Signal.NEED_DATA
PAUSED = Signal.PAUSED
END_OF_MESSAGE = EndOfMessage([])

Event = Request | Data | EndOfMessage | ConnectionClosed | Signal
