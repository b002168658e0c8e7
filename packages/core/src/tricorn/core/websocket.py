"""Sans-I/O WebSocket connection (RFC 6455) with permessage-deflate (RFC 7692), server side.

`WebSocketConnection` takes received bytes and returns events; its `send_*` methods return the bytes
to write. It never touches a socket. Frames are parsed by the C codec (`parser.FrameParser`: every
framing rule, the size limit against each header before its payload is buffered, UTF-8 of
uncompressed text); this module joins fragments, inflates compressed messages (the inflated size is
capped: over `max_size` is close 1009; their text is then checked: 1007), answers pings, and runs
the closing handshake.

States: OPEN -> CLOSING (we sent a close frame, waiting for the peer's) -> CLOSED (both close
frames seen, or a protocol error: we sent a close frame and the caller must drop the connection).
A close frame received while OPEN is answered with the same code at once (-> CLOSED). Events:
    str | bytes                     a whole text / binary message, as it is (the common case:
                                    the parser's list of items is returned unchanged)
    | ("ping", bytes) | ("pong", bytes)
    | ("close", code, reason)       the peer's close (code 1005 when it gave none)
    | ("error", code)               we failed the connection with this close code
Bytes to send that the connection produced by itself (pongs, close replies) collect in `outgoing`;
`data_to_send()` takes them. Received bytes come either as `receive_data(data)` or, for a buffered
transport, written into `get_buffer()` and announced with `buffer_updated(n)` (the parser's read
buffer: no copy into a bytes object first). Frames are parsed into marshal data (one C call, one
`marshal.loads`) while `max_size` is under 2 GiB, in place otherwise. `send_message` /
`message_frame` build headers in Python (cheaper than a C call for a few bytes).

Handshake helpers (`accept_key`, `PerMessageDeflate.negotiate`) are here too, so the ASGI glue only
maps messages.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from .parser import WS_MARSHAL_MAX, FrameError, FrameParser, utf8_valid, ws_frame, ws_header

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

Event = tuple[Any, ...]


# Headers of unmasked, unfragmented, uncompressed frames (RFC 6455 section 5.2), built here rather
# than by the C encoder (ws_header) because a cffi call costs more than these few bytes.
_SMALL_HEADERS: Final = {op: [bytes((0x80 | op, n)) for n in range(126)] for op in (OP_TEXT, OP_BINARY)}
_pack_16: Final = struct.Struct("!BBH").pack
_pack_64: Final = struct.Struct("!BBQ").pack


class WsState(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_OPEN: Final = WsState.OPEN  # enum member lookups cost more than a global on the hot path
_CLOSED: Final = WsState.CLOSED


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 - the RFC's choice


def valid_key(key: bytes) -> bool:
    """A Sec-WebSocket-Key is the base64 of 16 bytes."""
    if len(key) != 24:
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


class PerMessageDeflate:
    """One negotiated permessage-deflate context (both directions)."""

    __slots__ = ("server_no_context_takeover", "client_no_context_takeover", "server_bits",
                 "client_bits", "_compressor", "_decompressor", "level")

    def __init__(self, *, server_no_context_takeover: bool = False,
                 client_no_context_takeover: bool = False, server_bits: int = 15,
                 client_bits: int = 15, level: int = 6) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_bits = server_bits
        self.client_bits = client_bits
        self.level = level
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    @classmethod
    def negotiate(cls, header: bytes) -> tuple[PerMessageDeflate, bytes] | None:
        """The first acceptable permessage-deflate offer in a Sec-WebSocket-Extensions value:
        (context, response extension value), or None."""
        for offer in header.split(b","):
            parts = [p.strip() for p in offer.split(b";")]
            if parts[0].lower() != b"permessage-deflate":
                continue
            params: dict[bytes, bytes | None] = {}
            ok = True
            for part in parts[1:]:
                if not part:
                    ok = False
                    break
                name, eq, value = part.partition(b"=")
                name = name.strip().lower()
                val = value.strip().strip(b'"') if eq else None
                if name in params:
                    ok = False
                    break
                params[name] = val
            if not ok:
                continue
            resp = [b"permessage-deflate"]
            kw: dict[str, object] = {}
            for name, val in params.items():
                if name in (b"server_no_context_takeover", b"client_no_context_takeover"):
                    if val is not None:
                        ok = False
                        break
                    kw[name.decode()] = True
                    resp.append(name)
                elif name in (b"server_max_window_bits", b"client_max_window_bits"):
                    if val is None:
                        if name == b"server_max_window_bits":
                            ok = False
                            break
                        continue  # client_max_window_bits without a value: the client may limit
                    if not val.isdigit() or not 8 <= int(val) <= 15 or val.startswith(b"0"):
                        ok = False
                        break
                    bits = int(val)
                    if name == b"server_max_window_bits":
                        bits = max(bits, 9)  # zlib cannot deflate with a 256-byte window
                        if bits != int(val):
                            ok = False
                            break
                        kw["server_bits"] = bits
                    else:
                        kw["client_bits"] = bits
                    resp.append(b"%s=%d" % (name, bits))
                else:
                    ok = False
                    break
            if ok:
                return cls(**kw), b"; ".join(resp)  # type: ignore[arg-type]
        return None

    def compress(self, data: bytes) -> bytes:
        comp = self._compressor
        if comp is None or self.server_no_context_takeover:
            comp = self._compressor = zlib.compressobj(self.level, zlib.DEFLATED, -self.server_bits)
        out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(b"\x00\x00\xff\xff"):
            out = out[:-4]
        return out or b"\x00"

    def decompress(self, data: bytes, max_size: int) -> bytes:
        """Inflate one message; more than `max_size` bytes raises FrameError(1009), bad data 1007."""
        dec = self._decompressor
        if dec is None or self.client_no_context_takeover:
            dec = self._decompressor = zlib.decompressobj(-15)
        try:
            out = dec.decompress(data + b"\x00\x00\xff\xff", max_size + 1 if max_size else 0)
        except zlib.error:
            raise FrameError(1007) from None
        if (max_size and len(out) > max_size) or dec.unconsumed_tail:
            raise FrameError(1009)
        return out


class WebSocketConnection:
    """The server side of one WebSocket connection, sans I/O (see the module docstring)."""

    __slots__ = ("state", "parser", "buf", "deflate", "max_size", "_parts", "_opcode",
                 "_compressed", "outgoing", "close_code", "close_reason", "close_sent", "_marshal",
                 "_read_view", "get_buffer")

    get_buffer: Callable[[], memoryview]
    """Where the next received bytes should go (`asyncio.BufferedProtocol`), then
    `buffer_updated`: the parser's read buffer, so they are parsed where the socket wrote them (an
    attribute, not a method: the parser's own bound method when it parses to marshal data, one
    call less per read)."""

    def __init__(self, max_size: int = 16 * 1024 * 1024,
                 deflate: PerMessageDeflate | None = None) -> None:
        self.state = WsState.OPEN
        self.max_size = max_size
        self.parser = FrameParser(max_size, server=True, rsv1=deflate is not None)
        self._marshal = 0 < max_size <= WS_MARSHAL_MAX
        self._read_view: memoryview | None = None
        self.get_buffer = self.parser.get_buffer if self._marshal else self._bytes_buffer
        self.deflate = deflate
        self.buf = bytearray()
        self._parts: list[bytes] = []
        self._opcode = 0
        self._compressed = False
        self.outgoing: list[bytes] = []
        self.close_code: int | None = None  # the peer's
        self.close_reason = ""
        self.close_sent: int | None = None

    # ------------------------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """Events for these received bytes."""
        if self.state is _CLOSED:
            return []
        if self._marshal:  # one C call + one marshal.loads; messages in one frame ready-made
            return self._events(self.parser.feed(data))
        buf = self.buf  # a --ws-max-size of 2 GiB or more (or none): the in-place parser
        buf += data
        try:
            frames = self.parser.parse(buf)
        except FrameError as exc:
            events: list[Event] = []
            self._fail(exc.code, events)
            return events
        if self.parser.consumed:
            del buf[:self.parser.consumed]
        return self._events(frames)

    def _bytes_buffer(self) -> memoryview:
        """`get_buffer` for the in-place parser (`receive_data` gets a copy of what was read)."""
        view = self._read_view
        if view is None:
            view = self._read_view = memoryview(bytearray(65536))
        return view

    def buffer_updated(self, nbytes: int) -> list[Event]:
        """`receive_data` for `nbytes` written into the last `get_buffer()`."""
        if not self._marshal:
            view = self._read_view
            return self.receive_data(view[:nbytes].tobytes()) if view is not None else []
        parser = self.parser
        items = parser.buffer_updated(nbytes)
        state = self.state
        if state is _OPEN and not parser.error:  # the common case: whole messages only
            for item in items:
                if type(item) is tuple:
                    break
            else:
                return items
        elif state is _CLOSED:
            return []
        return self._events(items)

    def _events(self, frames: list[Any]) -> list[Event]:
        parser = self.parser
        events: list[Event] = []
        try:
            for frame in frames:
                kind = type(frame)
                if kind is str or kind is bytes:  # a whole message in one frame
                    if self.state is _OPEN:
                        events.append(frame)
                    continue
                opcode, fin, rsv1, payload, close_code = frame
                if opcode >= OP_CLOSE:
                    if self._control(opcode, payload, close_code, events):
                        return events  # the peer closed
                    continue
                if opcode:
                    self._opcode = opcode
                    self._compressed = bool(rsv1)
                if not fin:
                    self._parts.append(payload)
                    continue
                if self._parts:
                    self._parts.append(payload)
                    payload = b"".join(self._parts)
                    self._parts = []
                if self._compressed:
                    if self.deflate is None:  # pragma: no cover - C refuses RSV1 without it
                        raise FrameError(1002)
                    payload = self.deflate.decompress(payload, self.max_size)
                    if self._opcode == OP_TEXT and not utf8_valid(payload):
                        raise FrameError(1007)
                if self.state is not _OPEN:
                    continue  # data after our close frame is discarded
                events.append(payload.decode("utf-8") if self._opcode == OP_TEXT else payload)
            if parser.error:  # the frames before an error came first; now the error
                raise FrameError(parser.error)
        except FrameError as exc:
            self._fail(exc.code, events)
        return events

    def _control(self, opcode: int, payload: bytes, close_code: int, events: list[Event]) -> bool:
        """Handle a control frame; True once the peer's close frame has been handled."""
        if opcode == OP_PING:
            if self.state is _OPEN:
                self.outgoing.append(ws_frame(OP_PONG, payload))
            events.append(("ping", payload))
        elif opcode == OP_PONG:
            events.append(("pong", payload))
        else:
            self._peer_closed(payload, close_code, events)
            return True
        return False

    def _peer_closed(self, payload: bytes, close_code: int, events: list[Event]) -> None:
        reason = payload[2:].decode("utf-8")
        self.close_code = close_code
        self.close_reason = reason
        if self.state is _OPEN:  # echo the code (RFC 6455 section 5.5.1)
            reply = b"" if close_code == 1005 else struct.pack("!H", close_code)
            self.outgoing.append(ws_frame(OP_CLOSE, reply))
            self.close_sent = close_code
        self.state = WsState.CLOSED
        events.append(("close", close_code, reason))

    def _fail(self, code: int, events: list[Event]) -> None:
        if self.close_sent is None:
            self.outgoing.append(ws_frame(OP_CLOSE, struct.pack("!H", code)))
            self.close_sent = code
        self.state = WsState.CLOSED
        self.buf = bytearray()
        events.append(("error", code))

    def data_to_send(self) -> bytes:
        out = self.outgoing
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        return data

    # --------------------------------------------------------------------------------- sending

    def send_message(self, data: bytes | str) -> bytes:
        """One unfragmented frame (compressed when permessage-deflate is on and the message is
        over 32 bytes)."""
        header, payload = self.message_frame(data)
        return header + payload

    def message_frame(self, data: bytes | str) -> tuple[bytes, bytes]:
        """`send_message` as (header, payload), so a large payload need not be copied behind its
        header (the caller writes both, e.g. with `writelines`)."""
        if type(data) is str:
            opcode, payload = OP_TEXT, data.encode("utf-8")
        else:
            opcode, payload = OP_BINARY, data  # type: ignore[assignment]
        deflate = self.deflate
        if deflate is not None and len(payload) > 32:
            payload = deflate.compress(payload)
            return ws_header(opcode, len(payload), True, True), payload
        n = len(payload)
        if n < 126:
            return _SMALL_HEADERS[opcode][n], payload
        if n < 65536:
            return _pack_16(0x80 | opcode, 126, n), payload
        return _pack_64(0x80 | opcode, 127, n), payload

    def send_ping(self, payload: bytes = b"") -> bytes:
        return ws_frame(OP_PING, payload)

    def send_close(self, code: int = 1000, reason: str = "") -> bytes:
        """Our close frame (OPEN -> CLOSING); b"" once a close was sent."""
        if self.close_sent is not None or self.state is _CLOSED:
            return b""
        payload = b"" if code == 1005 else struct.pack("!H", code) + reason.encode("utf-8")[:123]
        self.close_sent = code
        self.state = WsState.CLOSING
        return ws_frame(OP_CLOSE, payload)


__all__ = [
    "GUID", "PerMessageDeflate", "WebSocketConnection", "WsState", "accept_key", "valid_key",
]
