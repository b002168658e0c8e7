"""Error log and access log.

The error log is the standard `logging` tree under the ``"tricorn"`` logger (modules log to
``logging.getLogger(__name__)``, the servers to ``"tricorn.error"``). `setup_logging` gives it one
handler: stderr for ``"-"`` (or ``"/dev/stderr"``), stdout for ``"/dev/stdout"``, or a file that
`Logs.reopen` reopens (SIGUSR1 / logrotate). Its format is Gunicorn's text lines (``"text"``) or
JSON lines (``"json"``, `JsonErrorFormatter`): one object per record with ``time`` (ISO 8601 UTC),
``level``, ``logger``, ``message``, ``pid``, and ``exception`` / ``stack`` when the record has them.

The access log does not go through `logging`: `AccessLog.log` formats an `AccessRecord` with a
compiled `AccessFormatter` and writes the line to a buffered file (or stdout for ``"-"``) under a
lock. A server keeps ``access_log: AccessLog | None`` and checks it once per request, so a disabled
access log costs one ``is None`` test.

Invariants:
- One request is exactly one line. Every string the format takes from the request, the response
  or the peer is escaped: bytes outside printable ASCII become ``\\xHH`` (``\\n``, ``\\r``, ``\\t``
  for those three), and in the text format ``\\`` and ``"`` become ``\\\\`` and ``\\"``. Nothing
  is URL-unquoted: the raw request-target is logged as received (CVE-2020-7694 was the opposite).
- A format string is compiled once: the per-record work is computing the atoms that format uses
  and one ``%`` formatting (text) or one JSON encoding (``"json"``). Format errors surface at
  compile time.
- The JSON format writes one object per line, ASCII only, with the same escaping applied to request
  strings before JSON encoding (so a log viewer printing decoded values cannot be injected either).
- Each line is written with one ``write`` + ``flush`` (unless ``autoflush=False``, where the server
  calls `AccessLog.flush` from its timer): with ``O_APPEND`` files, lines from several worker
  processes never interleave.
- Writing a log line never raises into the server: an `OSError` is counted and reported once on the
  error log.
- A JSON error-log record is one line whatever its message holds: `json` escapes line breaks,
  quotes, backslashes, control and non-ASCII characters (the decoded values are the message and
  traceback as logged). The text format is untouched by it: choosing ``"json"`` only swaps the
  handler's formatter, so the default costs nothing extra.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import operator
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO, TypeGuard

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "DEFAULT_ACCESS_LOG_FORMAT",
    "ERROR_LOG_FORMATS",
    "JSON_FORMAT",
    "LOG_LEVELS",
    "TRACE",
    "AccessFormatter",
    "AccessLog",
    "AccessRecord",
    "ErrorStream",
    "JsonErrorFormatter",
    "LineLogWriter",
    "Logs",
    "ReopenableFileHandler",
    "escape_bytes",
    "escape_str",
    "is_json_handler",
    "setup_from_settings",
    "setup_logging",
]

DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
"""Gunicorn's default access-log format (the Apache "combined" layout)."""

JSON_FORMAT = "json"
"""The `access_logformat` value that selects the built-in JSON-lines format."""

TRACE = 5
"""Log level below DEBUG, for Uvicorn's ``--log-level trace``."""

LOG_LEVELS: Mapping[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

ERROR_LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
ERROR_LOG_DATEFMT = "[%Y-%m-%d %H:%M:%S %z]"

ERROR_LOG_FORMATS: tuple[str, ...] = ("text", JSON_FORMAT)
"""The `error_logformat` values: Gunicorn-style text lines, or one JSON object per line."""

STDOUT_PATH = "/dev/stdout"
STDERR_PATH = "/dev/stderr"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --------------------------------------------------------------------------------------------------
# Escaping


def _byte_escape(b: int, quote: bool) -> bytes:
    if b == 0x5C:
        return b"\\\\"
    if b == 0x22 and quote:
        return b'\\"'
    if 0x20 <= b < 0x7F:
        return bytes((b,))
    short = {0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}.get(b)
    return short if short is not None else b"\\x%02x" % b


_TEXT_TABLE: tuple[bytes, ...] = tuple(_byte_escape(b, True) for b in range(256))
_JSON_TABLE: tuple[bytes, ...] = tuple(_byte_escape(b, False) for b in range(256))
# Printable ASCII except backslash (and the double quote in the text format).
_TEXT_UNSAFE_B = re.compile(rb"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_JSON_UNSAFE_B = re.compile(rb"[^\x20-\x5b\x5d-\x7e]")
_TEXT_UNSAFE_S = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_JSON_UNSAFE_S = re.compile(r"[^\x20-\x5b\x5d-\x7e]")


def _text_sub_b(m: re.Match[bytes]) -> bytes:
    return _TEXT_TABLE[m[0][0]]


def _json_sub_b(m: re.Match[bytes]) -> bytes:
    return _JSON_TABLE[m[0][0]]


def _char_escape(ch: str, table: tuple[bytes, ...]) -> str:
    o = ord(ch)
    if o < 0x100:
        return table[o].decode("ascii")
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def _text_sub_s(m: re.Match[str]) -> str:
    return _char_escape(m[0], _TEXT_TABLE)


def _json_sub_s(m: re.Match[str]) -> str:
    return _char_escape(m[0], _JSON_TABLE)


def escape_bytes(data: bytes, *, quote: bool = True) -> str:
    """`data` as printable ASCII: ``\\xHH``/``\\n``/``\\r``/``\\t`` for other bytes, ``\\\\`` for a
    backslash and (if `quote`) ``\\"`` for a double quote. Never contains a line break."""
    if quote:
        if _TEXT_UNSAFE_B.search(data) is None:
            return data.decode("ascii")
        return _TEXT_UNSAFE_B.sub(_text_sub_b, data).decode("ascii")
    if _JSON_UNSAFE_B.search(data) is None:
        return data.decode("ascii")
    return _JSON_UNSAFE_B.sub(_json_sub_b, data).decode("ascii")


def escape_str(text: str, *, quote: bool = True) -> str:
    """Like `escape_bytes` for text; characters above U+00FF become ``\\uHHHH``/``\\UHHHHHHHH``."""
    if quote:
        if _TEXT_UNSAFE_S.search(text) is None:
            return text
        return _TEXT_UNSAFE_S.sub(_text_sub_s, text)
    if _JSON_UNSAFE_S.search(text) is None:
        return text
    return _JSON_UNSAFE_S.sub(_json_sub_s, text)


# --------------------------------------------------------------------------------------------------
# The record


@dataclass(slots=True)
class AccessRecord:
    """What a server knows about one finished request. Treat as immutable once built.

    Request-derived fields are the bytes as received (`target` is the raw request-target, never
    unquoted). `path` and `query` default to the parts of `target` before and after the first ``?``.
    """

    remote_addr: str
    """Peer address (IP text, or "" for a Unix socket peer)."""
    remote_port: int | None
    time: float
    """Wall-clock time (`time.time()`) the request head was received."""
    method: bytes
    target: bytes
    http_version: str
    """"1.0" or "1.1" (without the "HTTP/" prefix)."""
    status: int
    body_bytes: int
    """Response body bytes sent (not counting the head)."""
    request_headers: Sequence[tuple[bytes, bytes]]
    """As parsed: lowercase names, raw values."""
    response_headers: Sequence[tuple[bytes, bytes]]
    duration: float
    """Seconds from the request head to the end of the response."""
    pid: int
    scheme: str = "http"
    path: bytes | None = None
    query: bytes | None = None
    extras: Mapping[str, object] | None = None
    """Server- or app-provided variables for the ``%({name}e)s`` atom (environ-like)."""


def _path_of(r: AccessRecord) -> bytes:
    if r.path is not None:
        return r.path
    return r.target.partition(b"?")[0]


def _query_of(r: AccessRecord) -> bytes:
    if r.query is not None:
        return r.query
    return r.target.partition(b"?")[2]


def _request_header(r: AccessRecord, name: bytes) -> bytes | None:
    for key, value in r.request_headers:
        if key == name:
            return value
    return None


def _response_header(r: AccessRecord, name: bytes) -> bytes | None:
    for key, value in r.response_headers:
        if key.lower() == name:
            return value
    return None


def _basic_user(r: AccessRecord) -> str | None:
    value = _request_header(r, b"authorization")
    if value is None:
        return None
    scheme, _, credentials = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return escape_bytes(decoded.partition(b":")[0])


def _clf_time(t: float) -> str:
    tm = time.localtime(t)
    offset = tm.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return (
        f"[{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year:04d}:"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} "
        f"{sign}{offset // 60:02d}{offset % 60:02d}]"
    )


# --------------------------------------------------------------------------------------------------
# Atoms: each returns a value for one `%(key)s` slot; strings are already escaped.

Atom = Callable[[AccessRecord], object]


def _dash_or_escaped(value: bytes | None) -> str:
    return "-" if value is None else escape_bytes(value)


def _timestamp_atom() -> Atom:
    # A one-entry cache per formatter: requests in the same second share the formatted date.
    cache: list[tuple[int, str]] = [(-1, "")]

    def atom(r: AccessRecord) -> str:
        second = int(r.time)
        cached = cache[0]
        if cached[0] == second:
            return cached[1]
        text = _clf_time(second)
        cache[0] = (second, text)
        return text

    return atom


def _header_atom(name: str, response: bool) -> Atom:
    key = name.lower().encode("latin-1", "replace")
    if response:
        return lambda r: _dash_or_escaped(_response_header(r, key))
    return lambda r: _dash_or_escaped(_request_header(r, key))


def _extra_atom(name: str) -> Atom:
    lowered = name.lower()

    def atom(r: AccessRecord) -> str:
        if r.extras is None:
            return "-"
        for key, value in r.extras.items():
            if key.lower() == lowered:
                if isinstance(value, bytes):
                    return escape_bytes(value)
                return escape_str(str(value))
        return "-"

    return atom


def _atom_h(r: AccessRecord) -> str:
    return escape_str(r.remote_addr) if r.remote_addr else "-"


def _atom_l(r: AccessRecord) -> str:
    return "-"


def _atom_u(r: AccessRecord) -> str:
    return _basic_user(r) or "-"


def _atom_r(r: AccessRecord) -> str:
    return f"{escape_bytes(r.method)} {escape_bytes(r.target)} HTTP/{escape_str(r.http_version)}"


def _atom_m(r: AccessRecord) -> str:
    return escape_bytes(r.method)


def _atom_U(r: AccessRecord) -> str:
    return escape_bytes(_path_of(r))


def _atom_q(r: AccessRecord) -> str:
    return escape_bytes(_query_of(r))


def _atom_H(r: AccessRecord) -> str:
    return "HTTP/" + escape_str(r.http_version)


def _atom_b(r: AccessRecord) -> str:
    return str(r.body_bytes) if r.body_bytes else "-"


def _atom_T(r: AccessRecord) -> int:
    return int(r.duration)


def _atom_M(r: AccessRecord) -> int:
    return int(r.duration * 1_000)


def _atom_D(r: AccessRecord) -> int:
    return int(r.duration * 1_000_000)


def _atom_L(r: AccessRecord) -> str:
    return f"{r.duration:.6f}"


def _atom_p(r: AccessRecord) -> str:
    return f"<{r.pid}>"


_STATELESS_ATOMS: Mapping[str, Atom] = {
    "h": _atom_h,
    "l": _atom_l,
    "u": _atom_u,
    "r": _atom_r,
    "m": _atom_m,
    "U": _atom_U,
    "q": _atom_q,
    "H": _atom_H,
    "s": operator.attrgetter("status"),
    "B": operator.attrgetter("body_bytes"),
    "b": _atom_b,
    "f": _header_atom("referer", False),
    "a": _header_atom("user-agent", False),
    "T": _atom_T,
    "M": _atom_M,
    "D": _atom_D,
    "L": _atom_L,
    "p": _atom_p,
}

_HEADER_ATOM = re.compile(r"\{([^}]*)\}([ioe])\Z")


def _make_atom(key: str) -> Atom:
    if key == "t":
        return _timestamp_atom()  # has a per-formatter cache
    atom = _STATELESS_ATOMS.get(key)
    if atom is not None:
        return atom
    m = _HEADER_ATOM.match(key)
    if m is None:
        return lambda r: "-"  # unknown atoms render as "-", like Gunicorn
    name, kind = m.group(1), m.group(2)
    if kind == "e":
        return _extra_atom(name)
    return _header_atom(name, kind == "o")


_SAMPLE = AccessRecord(
    remote_addr="127.0.0.1",
    remote_port=50000,
    time=0.0,
    method=b"GET",
    target=b"/?q=1",
    http_version="1.1",
    status=200,
    body_bytes=2,
    request_headers=[(b"host", b"example")],
    response_headers=[(b"content-length", b"2")],
    duration=0.001,
    pid=1,
)

_TOKEN = re.compile(r"%%|%\(([^)]*)\)")


def _stray_percent(fmt: str) -> str:
    return f"stray '%' in access log format {fmt!r} (write '%%' for a percent sign)"


def _compile_text(fmt: str) -> tuple[str, tuple[str, ...], tuple[Atom, ...]]:
    """Turn ``%(key)s`` slots into positional ``%s`` slots; reject any other lone ``%``."""
    parts: list[str] = []
    keys: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(fmt):
        literal = fmt[pos : m.start()]
        if "%" in literal:
            raise ValueError(_stray_percent(fmt))
        parts.append(literal)
        key = m.group(1)
        if key is None:
            parts.append("%%")
        else:
            parts.append("%")
            keys.append(key)
        pos = m.end()
    tail = fmt[pos:]
    if "%" in tail:
        raise ValueError(_stray_percent(fmt))
    parts.append(tail)
    return "".join(parts), tuple(keys), tuple(_make_atom(k) for k in keys)


# JSON string content (between the quotes) for a byte whose logged value is _JSON_TABLE[b]:
# the escaped text, JSON-encoded. Safe bytes are the same as for the text format.
_JSON_CONTENT_TABLE: tuple[bytes, ...] = tuple(
    json.dumps(_JSON_TABLE[b].decode("ascii"))[1:-1].encode("ascii") for b in range(256)
)


def _json_content_sub_b(m: re.Match[bytes]) -> bytes:
    return _JSON_CONTENT_TABLE[m[0][0]]


def _json_content_sub_s(m: re.Match[str]) -> str:
    return json.dumps(_char_escape(m[0], _JSON_TABLE))[1:-1]


def _json_bytes(data: bytes) -> str:
    """A JSON string literal whose decoded value is ``escape_bytes(data, quote=False)``."""
    if _TEXT_UNSAFE_B.search(data) is None:
        return f'"{data.decode("ascii")}"'
    return f'"{_TEXT_UNSAFE_B.sub(_json_content_sub_b, data).decode("ascii")}"'


def _json_str(text: str) -> str:
    if _TEXT_UNSAFE_S.search(text) is None:
        return f'"{text}"'
    return f'"{_TEXT_UNSAFE_S.sub(_json_content_sub_s, text)}"'


class _JsonLine:
    """The built-in JSON format: a fixed set of keys, one compact ASCII object per line.

    Built by hand (every string goes through `_json_bytes`/`_json_str`, numbers are formatted as
    ints or finite floats), which is about three times faster than `json.dumps` of a dict; the tests
    check the output with `json.loads` on hostile input."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: tuple[int, str] = (-1, "")  # (second, "YYYY-MM-DDTHH:MM:SS"), one attribute

    def _time(self, t: float) -> str:
        second = int(t)
        cached_second, prefix = self._cache
        if second != cached_second:
            tm = time.gmtime(second)
            prefix = (
                f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
            )
            self._cache = (second, prefix)
        return f"{prefix}.{int((t - second) * 1000):03d}Z"

    def __call__(self, r: AccessRecord) -> str:
        referer = _request_header(r, b"referer")
        agent = _request_header(r, b"user-agent")
        duration_ms = round(r.duration * 1000.0, 3)
        return (
            f'{{"time":"{self._time(r.time)}"'
            f',"remote_addr":{_json_str(r.remote_addr)}'
            f',"remote_port":{"null" if r.remote_port is None else int(r.remote_port)}'
            f',"method":{_json_bytes(r.method)}'
            f',"path":{_json_bytes(_path_of(r))}'
            f',"query":{_json_bytes(_query_of(r))}'
            f',"protocol":{_json_str("HTTP/" + r.http_version)}'
            f',"status":{int(r.status)}'
            f',"bytes":{int(r.body_bytes)}'
            f',"duration_ms":{duration_ms if math.isfinite(duration_ms) else "null"}'
            f',"referer":{"null" if referer is None else _json_bytes(referer)}'
            f',"user_agent":{"null" if agent is None else _json_bytes(agent)}'
            f',"pid":{int(r.pid)}}}'
        )


class AccessFormatter:
    """A compiled access-log format: ``formatter.format(record) -> str`` (no trailing newline).

    `fmt` is a Gunicorn ``access_log_format`` string (``%(key)s`` slots; ``%%`` for a percent
    sign; any printf conversion is allowed after the key, e.g. ``%(D)d``) or ``"json"``. Atoms:
    h l u t r m U q H s B b f a T M D L p ``{header}i`` ``{header}o`` ``{name}e``; unknown atoms
    render ``-``.
    Raises `ValueError` for a malformed format.
    """

    __slots__ = ("fmt", "atoms", "format")

    fmt: str
    atoms: tuple[str, ...]
    """The atom keys this format uses, in order (empty for JSON)."""
    format: Callable[[AccessRecord], str]

    def __init__(self, fmt: str = DEFAULT_ACCESS_LOG_FORMAT) -> None:
        self.fmt = fmt
        if fmt == JSON_FORMAT:
            self.atoms = ()
            self.format = _JsonLine()
            return
        template, keys, atoms = _compile_text(fmt)
        self.atoms = keys

        def format_record(r: AccessRecord) -> str:
            return template % tuple([atom(r) for atom in atoms])

        try:
            probe = format_record(_SAMPLE)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"bad access log format {fmt!r}: {exc}") from exc
        if "\n" in probe or "\r" in probe:
            raise ValueError(f"access log format {fmt!r} contains a line break")
        self.format = format_record


# --------------------------------------------------------------------------------------------------
# The JSON error log


def _iso_utc_second(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) of a Unix time in whole seconds."""
    tm = time.gmtime(second)
    return (
        f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    )


_json_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode


class JsonErrorFormatter(logging.Formatter):
    """Formats a `logging.LogRecord` as one compact ASCII JSON object (no trailing newline).

    Keys, in order: ``time`` (ISO 8601 UTC, milliseconds, as in the JSON access log), ``level``
    (``INFO``, ``ERROR``...), ``logger``, ``message`` (the %-formatted message), ``pid``; then
    ``exception`` (the formatted traceback) when the record carries exception info, and
    ``stack`` when it carries stack info. Line breaks, quotes and every character outside
    printable ASCII are JSON-escaped, so a record is exactly one line."""

    def __init__(self) -> None:
        super().__init__()
        # (second, "YYYY-MM-DDTHH:MM:SS"): records come in bursts. One attribute, so a thread
        # never pairs one second with another's text.
        self._cache: tuple[int, str] = (-1, "")

    def _time(self, t: float) -> str:
        second, ms = divmod(round(t * 1000), 1000)  # rounded: 0.001 is not exact in binary
        cached_second, prefix = self._cache
        if second != cached_second:
            prefix = _iso_utc_second(second)
            self._cache = (second, prefix)
        return f"{prefix}.{ms:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process if record.process is not None else os.getpid(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)  # cached, as logging does
        if record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return _json_encode(fields)


class LineLogWriter:
    """A write-only text stream that turns each line written to it into a record of `handler`
    (logger `name`, level `level`, bypassing logger levels as a raw stream would): what
    ``wsgi.errors`` becomes when the error log is JSON, so application text stays inside JSON
    lines. A partial line is kept until its newline, `flush`, or 64 KiB. Thread-safe."""

    __slots__ = ("handler", "name", "level", "_pending", "_lock")

    MAX_PENDING = 65536

    def __init__(self, handler: logging.Handler, name: str, level: int = logging.ERROR) -> None:
        self.handler = handler
        self.name = name
        self.level = level
        self._pending = ""
        self._lock = threading.Lock()

    def _emit(self, line: str) -> None:
        record = logging.LogRecord(self.name, self.level, "", 0, line, None, None)
        self.handler.handle(record)

    def write(self, text: str) -> int:
        with self._lock:
            data = self._pending + text
            *lines, self._pending = data.split("\n")
            if len(self._pending) >= self.MAX_PENDING:
                lines.append(self._pending)
                self._pending = ""
        for line in lines:
            self._emit(line.removesuffix("\r"))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            line, self._pending = self._pending, ""
        if line:
            self._emit(line)


def is_json_handler(handler: logging.Handler | None) -> TypeGuard[logging.Handler]:
    """True if `handler` writes JSON error-log records (raw text must not go to its stream)."""
    return handler is not None and isinstance(handler.formatter, JsonErrorFormatter)


# --------------------------------------------------------------------------------------------------
# Outputs

_error_log = logging.getLogger("tricorn.error")


def _open_append(path: str) -> TextIO:
    return open(path, "a", encoding="utf-8", errors="backslashreplace")


class AccessLog:
    """Formats and writes access-log lines to `path` (``"-"`` = stdout). Thread-safe."""

    __slots__ = (
        "path",
        "formatter",
        "autoflush",
        "failures",
        "_reported",
        "_lock",
        "_stream",
        "_owned",
    )

    def __init__(
        self, path: str, fmt: str = DEFAULT_ACCESS_LOG_FORMAT, *, autoflush: bool = True
    ) -> None:
        self.path = path
        self.formatter = AccessFormatter(fmt)
        self.autoflush = autoflush
        self.failures = 0
        """Lines lost to `OSError` (disk full, closed pipe...)."""
        self._reported = False  # the first failure since (re)opening goes to the error log
        self._lock = threading.Lock()
        self._owned = path != "-"
        self._stream: TextIO = _open_append(path) if self._owned else sys.stdout

    def log(self, record: AccessRecord) -> None:
        """Format `record` and write it as one line."""
        self.write_line(self.formatter.format(record))

    def write_line(self, line: str) -> None:
        with self._lock:
            try:
                self._stream.write(line + "\n")
                if self.autoflush:
                    self._stream.flush()
            except (OSError, ValueError) as exc:  # ValueError: write to a closed file
                self.failures += 1
                if not self._reported:
                    self._reported = True
                    _error_log.error("cannot write to access log %s: %s", self.path, exc)

    def flush(self) -> None:
        with self._lock:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.failures += 1

    def reopen(self) -> None:
        """Reopen the file by name (after logrotate moved it); no-op for stdout. Raises `OSError`
        (and keeps writing to the old file) if the file cannot be opened."""
        if not self._owned:
            return
        new = _open_append(self.path)
        with self._lock:
            old, self._stream = self._stream, new
            self._reported = False
        try:
            old.close()
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            try:
                if self._owned:
                    self._stream.close()
                else:
                    self._stream.flush()
            except (OSError, ValueError):
                pass


class ReopenableFileHandler(logging.StreamHandler[TextIO]):
    """A `logging` handler appending to a file that `reopen` reopens by name."""

    def __init__(self, path: str) -> None:
        super().__init__(_open_append(path))
        self.path = path

    def reopen(self) -> None:
        """Switch to a new file at `path`; raises `OSError` (and keeps the old file) if it cannot
        be opened."""
        new = _open_append(self.path)
        self.acquire()
        try:
            old = self.setStream(new)
        finally:
            self.release()
        if old is not None:
            try:
                old.close()
            except OSError:
                pass

    def close(self) -> None:
        self.acquire()
        try:
            try:
                self.stream.close()
            except OSError:
                pass
        finally:
            self.release()
        super().close()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The error log on stderr or stdout (a distinct class so `setup_logging` can find and
    replace it; the process's own stream, never reopened)."""


@dataclass(slots=True)
class Logs:
    """What `setup_logging` installed. Keep it; call `reopen` on SIGUSR1 and `close` at exit."""

    error: logging.Logger
    """The ``"tricorn.error"`` logger."""
    access: AccessLog | None
    """None when access logging is off."""
    handler: logging.Handler
    """The handler installed on the ``"tricorn"`` logger."""

    def reopen(self) -> None:
        """Reopen the error log and access log files by name (stdout/stderr are left alone).
        A file that cannot be reopened is reported on the error log and the old one kept."""
        reopenable: list[ReopenableFileHandler | AccessLog] = []
        if isinstance(self.handler, ReopenableFileHandler):
            reopenable.append(self.handler)
        if self.access is not None:
            reopenable.append(self.access)
        for log in reopenable:
            try:
                log.reopen()
            except OSError as exc:
                self.error.error("cannot reopen log file %s: %s", log.path, exc)

    def close(self) -> None:
        logging.getLogger("tricorn").removeHandler(self.handler)
        self.handler.close()
        if self.access is not None:
            self.access.close()


def setup_logging(
    *,
    log_level: str = "info",
    error_logfile: str = "-",
    access_logfile: str | None = None,
    access_logformat: str = DEFAULT_ACCESS_LOG_FORMAT,
    error_logformat: str = "text",
    autoflush: bool = True,
) -> Logs:
    """Install the error-log handler on the ``"tricorn"`` logger (replacing one installed
    earlier) and open the access log. Raises `ValueError` (bad level or format) or `OSError`."""
    level = LOG_LEVELS.get(log_level.lower())
    if level is None:
        known = ", ".join(LOG_LEVELS)
        raise ValueError(f"unknown log level {log_level!r}; expected one of {known}")
    error_logformat = error_logformat.strip().lower()
    if error_logformat not in ERROR_LOG_FORMATS:
        known = ", ".join(ERROR_LOG_FORMATS)
        raise ValueError(f"unknown error log format {error_logformat!r}; expected one of {known}")
    logging.addLevelName(TRACE, "TRACE")
    access = (
        None
        if access_logfile is None
        else AccessLog(access_logfile, access_logformat, autoflush=autoflush)
    )
    handler: logging.Handler
    if error_logfile in ("-", STDERR_PATH):
        handler = _StderrHandler(sys.stderr)
    elif error_logfile == STDOUT_PATH:
        handler = _StderrHandler(sys.stdout)  # the stream itself: a socket cannot be reopened
    else:
        handler = ReopenableFileHandler(error_logfile)
    if error_logformat == JSON_FORMAT:
        handler.setFormatter(JsonErrorFormatter())
    else:
        handler.setFormatter(logging.Formatter(ERROR_LOG_FORMAT, ERROR_LOG_DATEFMT))
    root = logging.getLogger("tricorn")
    for old in list(root.handlers):
        if isinstance(old, (_StderrHandler, ReopenableFileHandler)):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return Logs(error=logging.getLogger("tricorn.error"), access=access, handler=handler)


def setup_from_settings(cfg: Settings, *, autoflush: bool = True) -> Logs:
    """`setup_logging` from loaded settings (log_level, error_logfile, error_logformat,
    access_logfile, access_logformat)."""
    from . import settings as s  # settings imports this module; import late to avoid a cycle

    return setup_logging(
        log_level=cfg[s.LOG_LEVEL],
        error_logfile=cfg[s.ERROR_LOGFILE],
        error_logformat=cfg[s.ERROR_LOGFORMAT],
        access_logfile=cfg[s.ACCESS_LOGFILE],
        access_logformat=cfg[s.ACCESS_LOGFORMAT],
        autoflush=autoflush,
    )


class ErrorStream:
    """``wsgi.errors`` (tricorn-wsgi, and tricorn-asgi's WSGI interface): text the application
    writes goes to the error log's stream (stderr, or the error log file, following reopens); with
    a JSON error log, each line becomes a record of logger ``tricorn.wsgi.errors`` instead, so the
    stream stays JSON lines."""

    __slots__ = ("_handler", "_lock", "_lines")

    def __init__(self, handler: logging.Handler | None) -> None:
        self._handler = handler
        self._lock = threading.Lock()
        self._lines = (LineLogWriter(handler, "tricorn.wsgi.errors") if is_json_handler(handler)
                       else None)

    def _stream(self) -> TextIO:
        stream = getattr(self._handler, "stream", None)
        return stream if stream is not None else sys.stderr

    def write(self, text: str) -> int:
        if self._lines is not None:
            return self._lines.write(text)
        with self._lock:
            return self._stream().write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        if self._lines is not None:
            self._lines.writelines(lines)
            return
        with self._lock:
            stream = self._stream()
            for line in lines:
                stream.write(line)

    def flush(self) -> None:
        if self._lines is not None:
            self._lines.flush()
            return
        with self._lock:
            self._stream().flush()
