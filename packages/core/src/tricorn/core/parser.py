"""The only module that touches the C library (`_cparser`, built by cffi in API mode).

`HeadParser` turns a request head (or a trailer section) into a `Request`; `ChunkedDecoder` removes
chunked framing; `FrameParser` parses WebSocket frames (tricorn_ws.c; in place, or as marshal data
from a read buffer that a buffered transport fills) and `ws_frame`/`ws_header` encode them. Each
keeps its C state in a struct allocated once and reused, makes one C call per batch of available
bytes, and raises `ProtocolError` (with the status hint chosen in C) on bad input.

Object building is the cost that matters here, so the C side writes its result in Python's marshal
format: method, target, every field as a (lower-cased name, value) pair, flags and Content-Length.
One `marshal.loads` over a reused buffer then builds all the objects in C, with no intermediate copy
and no Python loop per field. The format is pinned by a test that compares the result with the objects
Python itself would marshal.

Memory: per connection only the small C state structs live in the parser objects. The output buffers
(about max_head_size for heads, 64 KiB for chunk data, 256 KiB for WebSocket frames) are scratch
space shared by all parsers of a thread, since each result is turned into Python objects before the
next C call on that thread (cffi releases the GIL during C calls, so threads must not share them).
So is the 256 KiB WebSocket read buffer (filled by a transport and parsed before the next read); a
WebSocket parser owns a buffer only while a frame is incomplete (sized for that frame, freed once
it is parsed).
"""

from __future__ import annotations

import marshal
import threading
from typing import Any, Final

from ._cparser import ffi, lib
from .errors import ProtocolError
from .events import Headers, Request
from .limits import ParserLimits

TC_CHUNKS_MORE: Final = lib.TC_CHUNKS_MORE
TC_CHUNKS_TRAILERS: Final = lib.TC_CHUNKS_TRAILERS

_new_request = tuple.__new__
_loads = marshal.loads
_unpack = ffi.unpack
_from_buffer = ffi.from_buffer
_parse_head = lib.tc_parse_head
_parse_trailers = lib.tc_parse_trailers
_decode_chunked = lib.tc_decode_chunked

CLimits = Any  # a cffi `tc_limits *`
CHUNK_SCRATCH_SIZE: Final = 65536


_tls = threading.local()


def _head_scratch(size: int) -> tuple[Any, Any]:
    """This thread's head output buffer (at least `size` bytes) and its buffer view."""
    out = ffi.new("char[]", size)
    _tls.head = pair = (size, out, ffi.buffer(out))
    return pair[1], pair[2]


def _chunk_scratch() -> Any:
    _tls.chunk = out = ffi.new("char[]", CHUNK_SCRATCH_SIZE)
    return out


def c_limits(limits: ParserLimits) -> CLimits:
    """A `tc_limits *` for the C calls (allocated once per server, shared by its connections)."""
    options = (
        (lib.TC_OPT_UNFOLD if limits.unfold else 0)
        | (lib.TC_OPT_ANY_METHOD if limits.any_method else 0)
        | (lib.TC_OPT_HOST_OPTIONAL if limits.host_optional else 0)
    )
    return ffi.new(
        "tc_limits *",
        {
            "max_request_line": limits.max_request_line,
            "max_fields": limits.max_fields,
            "max_field_size": limits.max_field_size,
            "max_head_size": limits.max_head_size,
            "max_body_size": limits.max_body_size,
            "max_chunk_line": limits.max_chunk_line,
            "max_chunk_ext": limits.max_chunk_ext,
            "options": options,
        },
    )


def error_for(code: int, offset: int = -1) -> ProtocolError:
    """The ProtocolError for a C error code, with its status hint and machine-readable reason."""
    return ProtocolError(
        lib.tc_error_status(code), ffi.string(lib.tc_error_name(code)).decode(), offset
    )


class HeadParser:
    """Parses request heads and trailer sections, one at a time, from a growing buffer.

    `parse(buf, start)` returns a `Request` once the head beginning at `buf[start]` is complete and
    None while more bytes are needed: pass the same buffer, grown, again. `length` is then the head's
    size in bytes. Each byte is examined a bounded number of times however the input is split.
    """

    __slots__ = ("_limits", "_head", "_out_size", "length")

    def __init__(self, limits: ParserLimits | CLimits) -> None:
        self._limits = c_limits(limits) if isinstance(limits, ParserLimits) else limits
        self._out_size = lib.tc_head_out_size(self._limits)
        self._head = ffi.new("tc_head *", {"limits": self._limits})
        self.length = 0

    def parse(self, buf: bytes | bytearray, start: int = 0) -> Request | None:
        fields = self._call(_parse_head, buf, start)
        return None if fields is None else _new_request(Request, fields)

    def parse_trailers(self, buf: bytes | bytearray, start: int = 0) -> Headers | None:
        """The trailer fields once the section beginning at `buf[start]` is complete, else None."""
        trailers: Headers | None = self._call(_parse_trailers, buf, start)
        return trailers

    def _call(self, parse: Any, buf: bytes | bytearray, start: int) -> Any:
        """One C call; the unmarshalled result when complete, None when more bytes are needed."""
        head = self._head
        try:
            size, out, view = _tls.head
        except AttributeError:
            size = 0
        if size < self._out_size:
            out, view = _head_scratch(self._out_size)
        if type(buf) is not bytes:
            buf = _from_buffer(buf)
        n = parse(head, buf, len(buf), start, out)
        if n > 0:
            self.length = n
            return _loads(view)
        if n == 0:
            return None
        raise error_for(head.error, head.error_offset)


class ChunkedDecoder:
    """Removes chunked transfer coding. One instance per connection; `reset()` for each body.

    `decode(buf, start)` decodes what `buf[start:]` holds and returns `(data, consumed, done)`:
    the body bytes found, how many input bytes they took, and whether the last chunk has been read
    (its trailer section then begins at `start + consumed`). At most 64 KiB of body comes out of
    one call. Bad framing raises ProtocolError; the body bytes that precede the bad byte come out
    first (the error is sticky and raised by the next call), so what the application receives
    before the error does not depend on how the input was split.
    """

    __slots__ = ("_limits", "_state")

    def __init__(self, limits: ParserLimits | CLimits) -> None:
        self._limits = c_limits(limits) if isinstance(limits, ParserLimits) else limits
        self._state = ffi.new("tc_chunked *", {"limits": self._limits})

    def reset(self) -> None:
        lib.tc_chunked_reset(self._state)

    @property
    def total(self) -> int:
        """Body bytes decoded so far."""
        return int(self._state.total)

    def decode(self, buf: bytes | bytearray, start: int = 0) -> tuple[bytes, int, bool]:
        st = self._state
        try:
            out = _tls.chunk
        except AttributeError:
            out = _chunk_scratch()
        if type(buf) is not bytes:
            buf = _from_buffer(buf)
        rc = _decode_chunked(st, buf, len(buf), start, out, CHUNK_SCRATCH_SIZE)
        n = st.out_len
        if rc == TC_CHUNKS_MORE or rc == TC_CHUNKS_TRAILERS:
            return (_unpack(out, n) if n else b""), st.consumed, rc == TC_CHUNKS_TRAILERS
        if n:  # the data before the bad byte first; the C state keeps the error for the next call
            return _unpack(out, n), st.consumed, False
        raise error_for(st.error, start + st.consumed)


# ------------------------------------------------------------------------------ WebSocket frames

WS_MAX_FRAMES: Final = 64
WS_SCRATCH_SIZE: Final = 256 * 1024
WS_SCRATCH_KEEP: Final = 1024 * 1024
WS_MARSHAL_MAX: Final = 0x7FFFFFFF - 64
_ws_parse = lib.tc_ws_parse
_ws_parse_marshal = lib.tc_ws_parse_marshal
_ws_header = lib.tc_ws_header
_WS_ALL_PARSED: Final = lib.TC_WS_ALL_PARSED
_WS_DIRECT_ITEMS: Final = lib.TC_WS_DIRECT_ITEMS
_unmask_copy = lib.tc_ws_unmask_copy
WS_DIRECT_MIN: Final = 16 * 1024
"""Binary messages of this size or more (in one frame) are unmasked straight from the read buffer
into their `bytes` object (see `_fill_direct`), not first into the marshal data."""


def _uninitialized_bytes() -> Any:
    """``PyBytes_FromStringAndSize(NULL, n)``: a new `bytes` object of n bytes whose contents are
    to be written before anyone else sees it (what CPython's own readers do). Through ctypes, as
    cffi cannot return Python objects from C; ``bytes(n)`` (zero-filled: one more pass) elsewhere."""
    try:
        import ctypes

        new = ctypes.pythonapi.PyBytes_FromStringAndSize
    except (ImportError, AttributeError):  # pragma: no cover - not CPython
        return lambda _none, size: bytes(size)
    new.restype = ctypes.py_object
    new.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
    return new


_new_bytes = _uninitialized_bytes()


def _fill_direct(items: list[Any], src: Any) -> None:
    """Replace the (offset, length, mask key) items of a marshal result with their messages: one
    unmasking copy from src (the parsed input) into a new `bytes` object each."""
    if type(src) is bytes:
        src = _from_buffer(src)
    for i, item in enumerate(items):
        if type(item) is tuple and len(item) == 3:
            offset, length, key = item
            message = _new_bytes(None, length)
            _unmask_copy(_from_buffer(message), src + offset, length, key & 0xFFFFFFFF)
            items[i] = message


WS_READ_SIZE: Final = 256 * 1024
"""The per-thread read buffer `FrameParser.get_buffer` hands out when no frame is incomplete."""
WS_READ_MIN: Final = 16 * 1024
"""Free room a parser's own buffer offers a read after an incomplete frame (besides the rest of
that frame, once its header told its size)."""


def _ws_read_buffer() -> tuple[bytearray, memoryview, Any]:
    buf = bytearray(WS_READ_SIZE)
    _tls.wsin = triple = (buf, memoryview(buf), _from_buffer(buf))
    return triple


def _ws_scratch(size: int) -> tuple[int, Any, Any]:
    """An output buffer for `FrameParser.feed` of at least `size` bytes (this thread's, unless it
    is larger than WS_SCRATCH_KEEP: then it is freed after use)."""
    size = max(size, WS_SCRATCH_SIZE)
    out = ffi.new("char[]", size)
    triple = (size, out, ffi.buffer(out))
    if size <= WS_SCRATCH_KEEP:
        _tls.ws = triple
    return triple


class FrameError(Exception):
    """A WebSocket protocol violation; `code` is the close code to send (1002, 1007, 1009)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"websocket protocol error {code}")
        self.code = code


class FrameParser:
    """Parses WebSocket frames (RFC 6455). Two ways to use one; all rules are checked in C in the
    same pass (see tricorn_ws.c), and fragments are returned as they are, for the caller to join.

    - `parse(buf, start)`: `buf` is the caller's bytearray, growing at its end. Every complete frame
      of `buf[start:]` is unmasked in place and returned as an `(opcode, fin, rsv1, payload,
      close_code)` tuple, with `consumed` set to the bytes they took (an incomplete frame stays for
      the next call: pass the same bytes, grown). A violation raises `FrameError` after the frames
      that precede it were returned.
    - `feed(data)`, or `get_buffer()` + `buffer_updated(n)` (a buffered transport reads straight
      into the parser): the parser keeps an incomplete frame itself, and one C call writes every
      complete frame as marshal data that one `marshal.loads` turns into objects -- a message in
      one frame directly as its `str` / `bytes` (a binary one of `WS_DIRECT_MIN` bytes or more is
      unmasked from the input straight into its `bytes` object instead, see `_fill_direct`).
      Errors set `error` (sticky) after the frames before them. This is the fast way
      (WebSocketConnection uses it up to 2 GiB messages).
    """

    __slots__ = ("_ws", "_frames", "_own", "_start", "_fill", "_shared", "consumed", "error")

    def __init__(self, max_size: int = 0, *, server: bool = True, rsv1: bool = False) -> None:
        options = (lib.TC_WS_MASK_REQUIRED if server else 0) | (lib.TC_WS_RSV1_ALLOWED if rsv1 else 0)
        self._ws = ffi.new("tc_ws *", {"max_size": max_size, "options": options,
                                       "direct_min": WS_DIRECT_MIN})
        self._frames: Any = None  # parse(): allocated on first use
        # feed() / buffer_updated(): an incomplete frame waits in _own[_start:_fill]
        self._own: bytearray | None = None
        self._start = 0
        self._fill = 0
        self._shared = False  # get_buffer() handed out the thread's read buffer
        self.consumed = 0
        self.error = 0
        """The close code of an error found after the frames the last call returned, else 0
        (sticky: every later call returns no frame)."""

    @property
    def buffered(self) -> int:
        """feed() / buffer_updated(): bytes of an incomplete frame kept for the next call."""
        return self._fill - self._start

    def _reserve(self, extra: int) -> bytearray:
        """Move the kept bytes to the front of the own buffer, with `extra` bytes free after them
        (a new buffer, never a resize: a transport may still hold a view of the old one)."""
        own, start, fill = self._own, self._start, self._fill
        n = fill - start
        if own is None or len(own) < n + extra:
            new = bytearray(max(n + extra, 2 * len(own) if own is not None else 0, WS_READ_MIN))
            if n and own is not None:
                new[:n] = own[start:fill]
            self._own = own = new
        elif start:
            own[:n] = own[start:fill]  # same length: no resize
        self._start, self._fill = 0, n
        return own

    def _kept(self, data: Any, used: int, size: int) -> None:
        """Keep data[used:size] (an incomplete frame) in the own buffer."""
        left = size - used
        own = self._reserve(left)
        with memoryview(data) as view:
            own[:left] = view[used:size]
        self._fill = left

    def _release(self) -> None:
        """Nothing is kept: free the own buffer (an idle connection holds no buffer; making one
        for the next incomplete frame costs little next to receiving it)."""
        self._start = self._fill = 0
        self._own = None

    def _parse_marshal(self, src: Any, size: int, start: int) -> tuple[list[Any], int]:
        """Every complete frame of src[start:size] as feed() items, and the bytes they took."""
        ws = self._ws
        try:
            cap, out, view = _tls.ws
        except AttributeError:
            cap, out, view = _ws_scratch(0)
        pos = start
        items: list[Any] | None = None
        while True:
            n = _ws_parse_marshal(ws, src, size, pos, out, cap)
            pos += ws.consumed
            if n > 0:
                more = _loads(view)
                if n & _WS_DIRECT_ITEMS:
                    _fill_direct(more, src)
                if items is None:
                    items = more
                else:
                    items += more
            need = ws.need
            if not need:
                self.error = ws.error
                break
            if n <= 0:  # one frame larger than the buffer: a larger one for it
                cap, out, view = _ws_scratch(need)
        return (items if items is not None else []), pos - start

    def feed(self, data: bytes) -> list[Any]:
        """Parse `data` (after what the previous calls left) and return an item per complete frame:
        a message in one frame (text or binary, FIN, not compressed) as its `str` or `bytes`, any
        other frame as `(opcode, fin, rsv1, payload, close_code)`. The input is not modified
        (payloads are unmasked while copied, by one C call, into marshal data that one
        `marshal.loads` turns into the objects); an incomplete frame is kept. After an error the
        frames before it are returned and `error` is set (sticky). Messages are limited to 2 GiB
        here (`parse` has no such limit)."""
        if self._start == self._fill:
            if type(data) is not bytes:
                data = bytes(data)
            size = len(data)
            items, used = self._parse_marshal(data, size, 0)
            if used < size:
                self._kept(data, used, size)
            elif self._fill:
                self._release()
            return items
        own = self._reserve(len(data))
        fill = self._fill
        own[fill:fill + len(data)] = data
        self._fill = fill = fill + len(data)
        items, used = self._parse_marshal(_from_buffer(own), fill, 0)
        self._start = used
        if used == fill:
            self._release()
        return items

    def get_buffer(self) -> memoryview:
        """A writable buffer for the next received bytes (`asyncio.BufferedProtocol.get_buffer`),
        then `buffer_updated(nbytes)`: bytes go from the socket straight to where they are
        parsed. Without an incomplete frame that is this thread's read buffer (shared: it is
        parsed before any other connection reads); with one, this parser's own buffer, after the
        frame's first part and with room for the whole frame."""
        if self._start == self._fill:
            self._shared = True
            try:
                return _tls.wsin[1]  # type: ignore[no-any-return]
            except AttributeError:
                return _ws_read_buffer()[1]
        self._shared = False
        kept = self._fill - self._start
        rest_of_frame = int(self._ws.pending) - kept  # 0 or less when its header is incomplete
        own = self._reserve(max(rest_of_frame, 0) + WS_READ_MIN)
        return memoryview(own)[self._fill:]

    def buffer_updated(self, nbytes: int) -> list[Any]:
        """The transport wrote `nbytes` into the last `get_buffer()`: the items, as `feed`."""
        if self._shared:
            self._shared = False
            buf, _, c_buf = _tls.wsin  # get_buffer() made it
            try:
                cap, out, view = _tls.ws
            except AttributeError:
                cap, out, view = _ws_scratch(0)
            ws = self._ws
            n = _ws_parse_marshal(ws, c_buf, nbytes, 0, out, cap)  # usually all there is
            if n >= _WS_ALL_PARSED:  # the common case: whole frames only, no error
                items: list[Any] = _loads(view)
                if n & _WS_DIRECT_ITEMS:
                    _fill_direct(items, c_buf)
                return items
            used = ws.consumed
            items = _loads(view) if n > 0 else []
            if n > 0 and n & _WS_DIRECT_ITEMS:
                _fill_direct(items, c_buf)
            self.error = ws.error
            if ws.need:  # the scratch buffer is full: the rest as feed() does it
                more, more_used = self._parse_marshal(c_buf, nbytes, used)
                items += more
                used += more_used
            if used < nbytes:
                self._kept(buf, used, nbytes)
            return items
        own = self._own
        if own is None:  # pragma: no cover - get_buffer() made it
            return []
        self._fill = fill = self._fill + nbytes
        items, used = self._parse_marshal(_from_buffer(own), fill, self._start)
        self._start += used
        if self._start == fill:
            self._release()
        return items

    def allow_rsv1(self, on: bool = True) -> None:
        """Compressed messages (RSV1) are allowed once permessage-deflate is negotiated."""
        if on:
            self._ws.options |= lib.TC_WS_RSV1_ALLOWED
        else:
            self._ws.options &= ~lib.TC_WS_RSV1_ALLOWED

    @property
    def max_size(self) -> int:
        return int(self._ws.max_size)

    def parse(self, buf: bytearray, start: int = 0) -> list[tuple[int, int, int, bytes, int]]:
        ws = self._ws
        frames = self._frames
        if frames is None:
            frames = self._frames = ffi.new("tc_ws_frame[]", WS_MAX_FRAMES)
        out: list[tuple[int, int, int, bytes, int]] = []
        c_buf = _from_buffer(buf)
        total = 0
        with memoryview(buf) as view:  # released before the caller resizes buf
            while True:
                n = _ws_parse(ws, c_buf, len(buf), start + total, frames, WS_MAX_FRAMES)
                self.error = ws.error
                if n < 0:
                    self.consumed = total
                    if out:  # the frames before the error first; it is raised by the next call
                        return out
                    raise FrameError(ws.error)
                for i in range(n):
                    f = frames[i]
                    off = f.offset
                    out.append((f.opcode, f.fin, f.rsv1, view[off:off + f.length].tobytes(),
                                f.close_code))
                total += ws.consumed
                if n < WS_MAX_FRAMES or ws.error:
                    self.consumed = total
                    return out


def ws_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False,
             mask_key: int = 0) -> bytes:
    """One frame: an unmasked server frame, or with `mask_key` a masked (client) frame."""
    header = ffi.new("char[14]")
    n = _ws_header(header, opcode, fin, rsv1, len(payload), mask_key)
    if mask_key:
        body = bytearray(payload)
        if body:
            lib.tc_ws_mask(_from_buffer(body), len(body), mask_key, 0)
        return bytes(_unpack(header, n)) + bytes(body)
    return bytes(_unpack(header, n)) + payload


def ws_header(opcode: int, length: int, fin: bool = True, rsv1: bool = False) -> bytes:
    """The header of an unmasked server frame with a payload of `length` bytes."""
    header = ffi.new("char[14]")
    return bytes(_unpack(header, _ws_header(header, opcode, fin, rsv1, length, 0)))


def utf8_valid(data: bytes) -> bool:
    return bool(lib.tc_ws_utf8_valid(data, len(data)))
