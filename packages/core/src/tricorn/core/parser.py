"""The only module that touches the C library (`_cparser`, built by cffi in API mode).

`HeadParser` turns a request head (or a trailer section) into a `Request`; `ChunkedDecoder` removes
chunked framing. Each keeps its C state in a struct allocated once and reused, makes one C call per
batch of available bytes, and raises `ProtocolError` (with the status hint chosen in C) on bad input.

Object building is the cost that matters here, so the C side writes its result in Python's marshal
format: method, target, every field as a (lower-cased name, value) pair, flags and Content-Length.
One `marshal.loads` over a reused buffer then builds all the objects in C, with no intermediate copy
and no Python loop per field. The format is pinned by a test that compares the result with the objects
Python itself would marshal.

Memory: per connection only the small C state structs live in the parser objects. The output buffers
(about max_head_size for heads, 64 KiB for chunk data) are scratch space shared by all parsers of a
thread, since each result is turned into Python objects before the next C call on that thread (cffi
releases the GIL during C calls, so threads must not share them).
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
