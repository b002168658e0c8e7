"""The C parser, rule by rule: RFC 9112 / RFC 9110 (reliability.md §2, rows R1-R40 that concern
parsing) and the trigger bytes of the black-box plan (§5, P1-P22), plus the limits, trailers,
chunked framing, persistence, Expect, Upgrade and request-target forms.

Every row is driven through the real stack (`Connection`, which uses `HeadParser` and
`ChunkedDecoder`), fed in one piece, then checked again fed one byte at a time and split at every
point: the outcome must not depend on how the bytes arrived. Rows that only touch the response side
(R35 lingering close, R38 drain-or-close) are socket-level and tested with the servers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tricorn.core.connection import Connection
from tricorn.core.errors import LocalProtocolError, ProtocolError
from tricorn.core.events import (
    F_ABSOLUTE_FORM,
    F_ASTERISK_FORM,
    F_AUTHORITY_FORM,
    F_CHUNKED,
    F_CONN_CLOSE,
    F_CONN_KEEP_ALIVE,
    F_EXPECT_CONTINUE,
    F_HOST,
    F_LENGTH,
    F_TE_FIELD,
    F_UNDERSCORE_NAME,
    F_UPGRADE,
    F_UPGRADE_FIELD,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)
from tricorn.core.limits import ParserLimits
from tricorn.core.parser import ChunkedDecoder, HeadParser

# ---------------------------------------------------------------------------------- the driver


@dataclass
class Msg:
    req: Request
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    complete: bool = False


@dataclass
class Exchange:
    msgs: list[Msg]
    error: tuple[int, str] | None  # (status, reason) of the ProtocolError
    end: str  # error | close | eof-complete | eof-incomplete | need-data | upgrade

    @property
    def completed(self) -> list[Msg]:
        return [m for m in self.msgs if m.complete]

    def summary(self) -> tuple[Any, ...]:
        return (tuple((m.req, m.body, tuple(m.trailers), m.complete) for m in self.msgs),
                self.error, self.end)


def exchange(pieces: list[bytes] | bytes, eof: bool = False, **limits: Any) -> Exchange:
    """Drive a Connection like a server: read each request to its end, answer it, go on while the
    connection persists."""
    if isinstance(pieces, bytes):
        pieces = [pieces]
    conn = Connection(ParserLimits(**limits))
    msgs: list[Msg] = []
    for piece in [*pieces, *([b""] if eof else [])]:
        conn.receive_data(piece)
        while True:
            try:
                ev = conn.next_event()
            except ProtocolError as e:
                assert not conn.keep_alive
                return Exchange(msgs, (e.status, e.reason), "error")
            if ev is NEED_DATA:
                break
            if isinstance(ev, Request):
                msgs.append(Msg(ev))
            elif isinstance(ev, Data):
                msgs[-1].body += ev.data
            elif isinstance(ev, EndOfMessage):
                msgs[-1].complete = True
                msgs[-1].trailers = list(ev.trailers)
                if msgs[-1].req.upgrade is not None:
                    return Exchange(msgs, None, "upgrade")
                conn.send_full_response(200, [], b"ok")
                if not conn.keep_alive:
                    return Exchange(msgs, None, "close")
                conn.start_next_cycle()
            elif isinstance(ev, ConnectionClosed):
                return Exchange(msgs, None, "eof-complete" if ev.complete else "eof-incomplete")
            else:
                raise AssertionError(f"unexpected {ev!r}")
    return Exchange(msgs, None, "need-data")


def split_feeds(raw: bytes) -> list[list[bytes]]:
    """One byte at a time, and every split in two (inputs up to 400 bytes; longer ones: 40 points)."""
    feeds = [[raw[i:i + 1] for i in range(len(raw))]]
    step = 1 if len(raw) <= 400 else max(1, len(raw) // 40)
    feeds += [[raw[:i], raw[i:]] for i in range(1, len(raw), step)]
    return feeds


def outcome(raw: bytes, eof: bool = False, **limits: Any) -> Exchange:
    """The exchange for raw in one piece, checked to be the same for every way of splitting it."""
    one = exchange(raw, eof, **limits)
    for feed in split_feeds(raw):
        assert exchange(feed, eof, **limits).summary() == one.summary(), f"split {len(feed[0])}"
    return one


HOST = b"Host: a\r\n"
GET = b"GET / HTTP/1.1\r\n" + HOST
POST = b"POST / HTTP/1.1\r\n" + HOST
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


# ---------------------------------------------------------------------------------- rejections

# (id, bytes, status, reason, requests completed before the error, ParserLimits options)
REJECT: list[tuple[str, bytes, int, str, int, dict[str, Any]]] = [
    # R1 / P1: Content-Length and Transfer-Encoding together
    ("R1-cl-then-te", POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "content_length_with_transfer_encoding", 0, {}),
    ("P1-te-then-cl-smuggle", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, 400, "content_length_with_transfer_encoding", 0, {}),
    # R2 / P2: chunked not the final coding
    ("R2-chunked-gzip", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400,
     "transfer_encoding_not_chunked", 0, {}),
    ("R2-gzip-alone", POST + b"Transfer-Encoding: gzip\r\n\r\n", 400,
     "transfer_encoding_not_chunked", 0, {}),
    ("P2-chunked-gzip-with-cl", POST + b"Transfer-Encoding: chunked, gzip\r\nContent-Length: 5\r\n"
     b"\r\nhello", 400, "content_length_with_transfer_encoding", 0, {}),
    ("P2-unknown-alone", POST + b"Transfer-Encoding: foo\r\n\r\n", 400,
     "transfer_encoding_not_chunked", 0, {}),
    # R3: an unknown coding before chunked
    ("R3-unknown-coding", POST + b"Transfer-Encoding: foo, chunked\r\n\r\n", 501,
     "unknown_transfer_coding", 0, {}),
    # gzip is a coding we do not decode: 501, never an application body still coded
    ("R3-gzip-coding", POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
     501, "unknown_transfer_coding", 0, {}),
    # R4 / P3: chunked twice, across lines too; chunked then identity
    ("R4-chunked-twice", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400,
     "chunked_applied_twice", 0, {}),
    ("P3-two-lines-chunked", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n", 400, "chunked_applied_twice", 0, {}),
    ("P3-chunked-then-identity", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: "
     b"identity\r\n\r\n", 400, "transfer_encoding_not_chunked", 0, {}),
    ("TE-empty-element", POST + b"Transfer-Encoding: ,chunked\r\n\r\n", 400,
     "bad_transfer_encoding", 0, {}),
    ("TE-empty", POST + b"Transfer-Encoding:\r\n\r\n", 400, "bad_transfer_encoding", 0, {}),
    # R5: Transfer-Encoding in HTTP/1.0
    ("R5-te-in-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "transfer_encoding_in_http10", 0, {}),
    # P4: obfuscated Transfer-Encoding values (only SP/HTAB are OWS)
    ("P4-vt-chunked", POST + b"Transfer-Encoding: \x0bchunked\r\n\r\n", 400, "control_byte", 0,
     {}),
    ("P4-tab-chunked-with-cl", POST + b"Transfer-Encoding: \tchunked\r\nContent-Length: 5\r\n\r\n",
     400, "content_length_with_transfer_encoding", 0, {}),
    ("P4-nbsp-chunked", POST + b"Transfer-Encoding: \xa0chunked\r\n\r\n", 400,
     "bad_transfer_encoding", 0, {}),
    ("P4-chunked-nul", POST + b"Transfer-Encoding: chunked\x00\r\n\r\n", 400, "control_byte", 0,
     {}),
    # R6 / P5: Content-Length is 1*DIGIT, once
    *[(f"R6-cl-{label}", POST + b"Content-Length: " + value + b"\r\n\r\n", 400,
       "bad_content_length", 0, {})
      for label, value in [("plus", b"+5"), ("minus", b"-1"), ("hex", b"0x5"), ("underscore", b"5_0"),
                           ("inner-space", b"5 5"), ("empty", b""), ("list-differs", b"5, 6"),
                           ("list-same", b"5, 5"), ("list-comma", b"1,2"), ("exp", b"1E3"),
                           ("30-digits", b"9" * 30)]],
    ("R6-two-cl-lines", POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
     "bad_content_length", 0, {}),
    ("R6-two-equal-cl-lines", POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400,
     "bad_content_length", 0, {}),
    # R7: no overflow
    ("R7-cl-2-64", POST + b"Content-Length: 18446744073709551616\r\n\r\n", 400,
     "bad_content_length", 0, {}),
    # R9 / P6: chunk-size is 1*HEXDIG, at most 64 bits
    *[(f"R9-chunk-size-{label}", CHUNKED + line + b"\r\nhello\r\n0\r\n\r\n", 400, "bad_chunk_size",
       0, {})
      for label, line in [("0x", b"0x5"), ("plus", b"+5"), ("minus", b"-5"), ("underscore", b"5_0"),
                          ("trailing-sp", b"5 "), ("leading-sp", b" 5"), ("empty", b""),
                          ("17-digits", b"F" * 17), ("g", b"5g")]],
    # R10 / P9: chunk-extension caps (per line: max_chunk_line; per message: max_chunk_ext)
    ("P9-extension-flood", CHUNKED + b"1;" + b"a" * 5000, 400, "chunk_extension_too_long", 0, {}),
    ("R10-extensions-per-message", CHUNKED + b"1;" + b"a" * 900 + b"\r\nx\r\n" +
     b"1;" + b"b" * 900 + b"\r\ny\r\n0\r\n\r\n", 400, "chunk_extension_too_long", 0,
     {"max_chunk_ext": 1000}),
    # R11 / P8: bare CR in the chunk line or extension
    ("R11-ext-bare-cr", CHUNKED + b"5;a=b\rc\r\nhello\r\n0\r\n\r\n", 400, "bare_cr", 0, {}),
    ("P8-size-cr-cr", CHUNKED + b"5\r\r;a\r\nhello\r\n0\r\n\r\n", 400, "bare_cr", 0, {}),
    ("R11-empty-ext-name", CHUNKED + b"2;\r\naa\r\n0\r\n\r\n", 400, "bad_chunk_extension", 0, {}),
    ("R11-ext-bad-char", CHUNKED + b"2;a@b\r\naa\r\n0\r\n\r\n", 400, "bad_chunk_extension", 0,
     {}),
    ("R11-unterminated-quote", CHUNKED + b"2;a=\"b\r\naa\r\n0\r\n\r\n", 400,
     "bad_chunk_extension", 0, {}),
    # P7: chunk data not followed by CRLF
    ("P7-data-end", CHUNKED + b"5\r\nhelloXX0\r\n\r\n", 400, "bad_chunk_data_end", 0, {}),
    ("P7-data-end-lf-only", CHUNKED + b"5\r\nhello\n0\r\n\r\n", 400, "bad_chunk_data_end", 0, {}),
    # R12 / P12: trailers that may not be trailers
    *[(f"R12-trailer-{name.decode()}", CHUNKED + b"0\r\n" + name + b": x\r\n\r\n", 400,
       "forbidden_trailer_field", 0, {})
      for name in [b"Host", b"Content-Length", b"Transfer-Encoding", b"Authorization",
                   b"Content-Type", b"Connection", b"Trailer"]],
    ("P12-host-and-cl", CHUNKED + b"5\r\nhello\r\n0\r\nHost: evil\r\nContent-Length: 9\r\n\r\n",
     400, "forbidden_trailer_field", 0, {}),
    # R13 / P13: bare LF
    ("R13-bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400, "bare_lf", 0, {}),
    ("P13-mixed", GET + b"X: b\n\r\n", 400, "bare_lf", 0, {}),
    ("R13-bare-lf-in-trailers", CHUNKED + b"0\r\nX: y\n\r\n", 400, "bare_lf", 0, {}),
    # R14 / R15 / P14: bare CR, NUL and other CTLs in values
    ("R14-bare-cr", GET + b"X: a\rb\r\n\r\n", 400, "bare_cr", 0, {}),
    ("P14-nul", GET + b"X: a\x00b\r\n\r\n", 400, "control_byte", 0, {}),
    ("P14-bel", GET + b"X: a\x07\r\n\r\n", 400, "control_byte", 0, {}),
    ("P14-del", GET + b"X: a\x7fb\r\n\r\n", 400, "control_byte", 0, {}),
    # R17 / R18 / P15: field names
    ("R17-space-before-colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "bad_field_name", 0,
     {}),
    ("R17-tab-before-colon", GET + b"Content-Length\t: 1\r\n\r\n", 400, "bad_field_name", 0, {}),
    ("R18-non-ascii-name", GET + b"Cont\x85ent-Length: 1\r\n\r\n", 400, "bad_field_name", 0, {}),
    ("R18-empty-name", GET + b": x\r\n\r\n", 400, "bad_field_name", 0, {}),
    ("R18-space-in-name", GET + b"Foo bar: x\r\n\r\n", 400, "bad_field_name", 0, {}),
    ("P15-no-colon", GET + b"Foo bar\r\n\r\n", 400, "bad_field_name", 0, {}),
    ("P15-name-without-colon", GET + b"Foo\r\n\r\n", 400, "field_without_colon", 0, {}),
    ("P15-nul-in-name", GET + b"X\x00: y\r\n\r\n", 400, "control_byte", 0, {}),
    # R19 / P16: obs-fold
    ("R19-obs-fold", GET + b"X: a\r\n b\r\n\r\n", 400, "obsolete_line_folding", 0, {}),
    ("R19-fold-of-framing-field", POST + b"Transfer-Encoding: gzip\r\n chunked\r\n\r\n", 400,
     "obsolete_line_folding", 0, {"unfold": True}),
    # R20 / P17: whitespace before the first field line, even with unfold
    ("R20-leading-ws", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400,
     "whitespace_before_first_field", 0, {}),
    ("R20-leading-ws-unfold", b"GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", 400,
     "whitespace_before_first_field", 0, {"unfold": True}),
    # R22 / P18: request-line syntax
    ("R22-double-sp", b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request_line", 0, {}),
    ("R22-tabs", b"GET\t/\tHTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request_line", 0, {}),
    ("R22-trailing-sp", b"GET / HTTP/1.1 \r\n" + HOST + b"\r\n", 400, "bad_http_version", 0, {}),
    ("R22-no-version", b"GET /\r\n\r\n", 400, "bad_request_line", 0, {}),
    ("P18-nul-method", b"GET\x00 / HTTP/1.1\r\n" + HOST + b"\r\n", 400, "control_byte", 0, {}),
    ("P18-colon-method", b"GET: / HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_method", 0, {}),
    ("P18-non-ascii-method", b"GET\xc3\x9f / HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_method",
     0, {}),
    ("P18-lower-case-method", b"get / HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_method", 0, {}),
    ("P18-token-not-conventional", b"G.T / HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_method",
     0, {}),
    # R23: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive; 2.0 / 3.0 unsupported
    *[(f"R23-version-{label}", b"GET / " + v + b"\r\n" + HOST + b"\r\n", 400,
       "bad_http_version", 0, {})
      for label, v in [("lower", b"http/1.1"), ("1.10", b"HTTP/1.10"), ("01.1", b"HTTP/01.1"),
                       ("111", b"HTTP/111"), ("ftp", b"FTP/1.1"), ("1.x", b"HTTP/1.x"),
                       ("32", b"HTTP/1.32"), ("empty", b"HTTP/")]],
    *[(f"R23-version-{label}", b"GET / " + v + b"\r\n" + HOST + b"\r\n", 505,
       "http_version_not_supported", 0, {})
      for label, v in [("2.0", b"HTTP/2.0"), ("3.0", b"HTTP/3.0"), ("0.9", b"HTTP/0.9"),
                       ("5.6", b"HTTP/5.6")]],
    # R24 / P21: a request line longer than the limit: 414
    ("R24-long-target", b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414,
     "request_line_too_long", 0, {}),
    ("R24-limit-plus-one", b"GET /" + b"a" * 87 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414,
     "request_line_too_long", 0, {"max_request_line": 100}),
    ("R24-leading-empty-lines-count", b"\r\n" * 40 + b"GET / HTTP/1.1\r\n" + HOST + b"\r\n",
     414, "request_line_too_long", 0, {"max_request_line": 50}),
    # R26 / P19: request-target forms
    ("R26-asterisk-get", b"GET * HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request_target", 0,
     {}),
    ("R26-authority-get", b"GET a:443 HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request_target",
     0, {}),
    ("P19-relative", b"GET foo/bar HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request_target", 0,
     {}),
    ("P19-connect-origin-form", b"CONNECT /x HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     "bad_request_target", 0, {}),
    ("P19-connect-no-port", b"CONNECT a HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     "bad_request_target", 0, {}),
    ("P19-absolute-userinfo", b"GET http://u@a/ HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     "bad_request_target", 0, {}),
    ("P19-absolute-no-authority", b"GET http:///x HTTP/1.1\r\n" + HOST + b"\r\n", 400,
     "bad_request_target", 0, {}),
    ("P19-exclamation", b"GET ! HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_request_target", 0, {}),
    # R28 / P20: Host
    ("R28-missing", b"GET / HTTP/1.1\r\n\r\n", 400, "missing_host", 0, {}),
    ("R28-two", b"GET / HTTP/1.1\r\nHost: a\r\nHost: evil\r\n\r\n", 400, "duplicate_host", 0, {}),
    *[(f"R28-invalid-{label}", b"GET / HTTP/1.1\r\nHost: " + v + b"\r\n\r\n", 400, "bad_host", 0,
       {})
      for label, v in [("space", b"a b"), ("slash", b"a/b"), ("userinfo", b"u@a"),
                       ("port-letters", b"a:8x"), ("bracket", b"[::1"), ("query", b"a?b")]],
    ("R28-absolute-form-still-needs-host", b"GET http://a/ HTTP/1.1\r\n\r\n", 400,
     "missing_host", 0, {}),
    # R29: an invalid request line is not autocorrected
    ("R29-space-in-target", b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n", 400, "bad_http_version",
     0, {}),
    # R30 / P22: field lines and sections too large
    ("P22-one-huge-field", GET + b"X: " + b"a" * (1 << 20) + b"\r\n\r\n", 431, "field_too_large",
     0, {}),
    ("P22-101-fields", GET + b"X: y\r\n" * 100 + b"\r\n", 431, "too_many_fields", 0, {}),
    ("P22-10000-fields", GET + b"X: y\r\n" * 10000 + b"\r\n", 431, "too_many_fields", 0, {}),
    ("R30-head-too-large", GET + b"X: yyyyyyyyyy\r\n" * 20 + b"\r\n", 431, "head_too_large", 0,
     {"max_head_size": 200}),
    ("R30-field-limit-plus-one", GET + b"X: " + b"a" * 8 + b"\r\n\r\n", 431, "field_too_large", 0,
     {"max_field_size": 10}),
    ("R30-trailer-fields", CHUNKED + b"0\r\n" + b"X: y\r\n" * 3 + b"\r\n", 431,
     "too_many_fields", 0, {"max_fields": 2}),
    ("R30-trailer-field-size", CHUNKED + b"0\r\nX: " + b"a" * 20 + b"\r\n\r\n", 431,
     "field_too_large", 0, {"max_field_size": 10}),
    # R31: garbage, e.g. TLS to a plaintext port, fails at once (no line end needed)
    ("R31-tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "control_byte",
     0, {}),
    ("R31-binary", b"\x00\xff\xfe", 400, "control_byte", 0, {}),
    # R37: an expectation other than 100-continue (HTTP/1.1)
    ("R37-expect-unknown", GET + b"Expect: foo\r\n\r\n", 417, "unsupported_expectation", 0, {}),
    # 413: the body limit, for both framings
    ("413-content-length", POST + b"Content-Length: 11\r\n\r\nhello world", 413, "body_too_large",
     0, {"max_body_size": 10}),
    ("413-chunked-total", CHUNKED + b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", 413,
     "body_too_large", 0, {"max_body_size": 10}),
    ("P10-one-byte-chunks-capped", CHUNKED + b"1\r\na\r\n" * 20 + b"0\r\n\r\n", 413,
     "body_too_large", 0, {"max_body_size": 10}),
    # Singleton fields and pipelining: only the requests before the error are delivered
    ("duplicate-content-type", GET + b"Content-Type: a\r\nContent-Type: b\r\n\r\n", 400,
     "duplicate_singleton_field", 0, {}),
    ("P29-garbage-after-valid", GET + b"\r\nGARBAGE\r\n\r\n" + GET + b"\r\n", 400,
     "bad_request_line", 1, {}),
    ("P29-smuggle-after-chunked", CHUNKED + b"0\r\n\r\n" + b"GET /x HTTP/1.1\r\n\r\n", 400,
     "missing_host", 1, {}),
]


@pytest.mark.parametrize(("raw", "status", "reason", "completed", "limits"),
                         [pytest.param(*row[1:], id=row[0]) for row in REJECT])
def test_rejected(raw: bytes, status: int, reason: str, completed: int,
                  limits: dict[str, Any]) -> None:
    ex = outcome(raw, **limits) if len(raw) < 20000 else exchange(raw, **limits)
    assert ex.error == (status, reason), ex
    assert len(ex.completed) == completed
    # nothing after the error: a failed request never completes, no later request is parsed
    assert all(m.complete for m in ex.msgs[:completed]) and len(ex.msgs) <= completed + 1


# ---------------------------------------------------------------------------------- acceptance


def body_of(ex: Exchange, i: int = 0) -> bytes:
    return ex.completed[i].body


def _flags(ex: Exchange, i: int = 0) -> int:
    return ex.msgs[i].req.flags


def _req(ex: Exchange, i: int = 0) -> Request:
    return ex.msgs[i].req


# (id, bytes, ParserLimits options, check)
ACCEPT: list[tuple[str, bytes, dict[str, Any], Callable[[Exchange], object]]] = [
    ("R8-no-length-no-body", POST + b"\r\n" + GET + b"\r\n", {},
     lambda ex: len(ex.completed) == 2 and body_of(ex) == b"" and ex.end == "need-data"),
    ("R9-16-hex-digits", CHUNKED + b"0000000000000005\r\nhello\r\n0\r\n\r\n", {},
     lambda ex: body_of(ex) == b"hello"),
    ("R9-max-chunk-size", CHUNKED + b"FFFFFFFFFFFFFFFF\r\nabc", {},
     lambda ex: ex.msgs[0].body == b"abc" and not ex.msgs[0].complete and ex.end == "need-data"),
    ("R9-leading-zeros-beyond-16", CHUNKED + b"0" * 30 + b"5\r\nhello\r\n0\r\n\r\n", {},
     lambda ex: body_of(ex) == b"hello"),
    ("R9-upper-and-lower-hex", CHUNKED + b"a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", {},
     lambda ex: body_of(ex) == b"0123456789" * 2),
    ("R10-extensions-ignored", CHUNKED + b"5;foo=bar\r\nhello\r\n6 ; a ; b = \"q\\\"x\"\r\n"
     b" world\r\n0;last\r\n\r\n", {},
     lambda ex: body_of(ex) == b"hello world"),
    ("R10-extension-at-line-limit", CHUNKED + b"1;" + b"a" * 4094 + b"\r\nx\r\n0\r\n\r\n", {},
     lambda ex: body_of(ex) == b"x"),
    ("R12-allowed-trailers", CHUNKED + b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nServer-Timing: "
     b"x\r\n\r\n", {},
     lambda ex: ex.completed[0].trailers == [(b"x-checksum", b"abc"), (b"server-timing", b"x")]
     and (b"x-checksum", b"abc") not in _req(ex).headers),
    ("R16-ows-trimmed", GET + b"X:\t v \t\r\nY: \xa0v\xa0\r\nZ:\r\n\r\n", {},
     lambda ex: _req(ex).headers[1:] == [(b"x", b"v"), (b"y", b"\xa0v\xa0"), (b"z", b"")]),
    ("R16-inner-whitespace-kept", GET + b"X: a \t b\r\n\r\n", {},
     lambda ex: _req(ex).get(b"x") == b"a \t b"),
    ("R19-unfold", GET + b"X: a\r\n b\r\n\t c \r\nY: d\r\n\r\n", {"unfold": True},
     lambda ex: _req(ex).get(b"x") == b"a b c" and _req(ex).get(b"y") == b"d"),
    ("R21-leading-empty-line", b"\r\n" + GET + b"\r\n", {},
     lambda ex: len(ex.completed) == 1),
    ("R21-empty-line-between-requests", POST + b"Content-Length: 3\r\n\r\nabc\r\n" + GET + b"\r\n",
     {}, lambda ex: len(ex.completed) == 2 and body_of(ex) == b"abc"),
    ("R24-line-at-limit", b"GET /" + b"a" * 86 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
     {"max_request_line": 100}, lambda ex: len(_req(ex).target) == 87),
    ("R25-long-method-is-a-token", b"A" * 200 + b" / HTTP/1.1\r\n" + HOST + b"\r\n", {},
     lambda ex: _req(ex).method == b"A" * 200),  # 501 is the server's answer, not the parser's
    ("R26-options-asterisk", b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n", {},
     lambda ex: _flags(ex) & F_ASTERISK_FORM and _req(ex).target == b"*"),
    ("R26-connect-authority", b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
     {}, lambda ex: _flags(ex) & F_AUTHORITY_FORM and _req(ex).target == b"a.example:443"),
    ("R26-connect-ipv6", b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", {},
     lambda ex: _flags(ex) & F_AUTHORITY_FORM),
    ("R27-absolute-form", b"GET http://a.example:8080/x?y HTTP/1.1\r\nHost: b\r\n\r\n", {},
     lambda ex: _flags(ex) & F_ABSOLUTE_FORM and _req(ex).target == b"http://a.example:8080/x?y"),
    ("R27-absolute-form-query-only", b"GET https://a?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", {},
     lambda ex: _flags(ex) & F_ABSOLUTE_FORM),
    ("R28-http10-without-host", b"GET / HTTP/1.0\r\n\r\n", {},
     lambda ex: len(ex.completed) == 1 and not _flags(ex) & F_HOST),
    ("R28-host-optional", b"GET / HTTP/1.1\r\n\r\n", {"host_optional": True},
     lambda ex: len(ex.completed) == 1),
    ("R28-valid-hosts", b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\nGET / HTTP/1.1\r\nHost: "
     b"a-b.c_d~e%20:8080\r\n\r\nGET / HTTP/1.1\r\nHost:\r\n\r\n", {},
     lambda ex: len(ex.completed) == 3),
    ("R30-field-at-limit", GET + b"X: " + b"a" * 7 + b"\r\n\r\n", {"max_field_size": 10},
     lambda ex: _req(ex).get(b"x") == b"a" * 7),
    ("R30-100-fields", GET + b"X: y\r\n" * 99 + b"\r\n", {},
     lambda ex: len(_req(ex).headers) == 100),
    ("R36-expect-in-http10-ignored", b"POST / HTTP/1.0\r\nExpect: foo\r\nContent-Length: 1\r\n\r\nx",
     {}, lambda ex: not _flags(ex) & F_EXPECT_CONTINUE and body_of(ex) == b"x"),
    ("R37-expect-100-continue", POST + b"Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nx", {},
     lambda ex: _flags(ex) & F_EXPECT_CONTINUE and _req(ex).expect_continue),
    ("413-at-limit", POST + b"Content-Length: 10\r\n\r\n0123456789", {"max_body_size": 10},
     lambda ex: body_of(ex) == b"0123456789"),
    ("R7-cl-max-uint64", POST + b"Content-Length: 18446744073709551615\r\n\r\nab", {},
     lambda ex: _req(ex).content_length == 2**64 - 1 and ex.msgs[0].body == b"ab"),
    ("P10-one-byte-chunks", CHUNKED + b"1\r\na\r\n" * 500 + b"0\r\n\r\n", {},
     lambda ex: body_of(ex) == b"a" * 500),
    ("P4-tab-chunked-alone", POST + b"Transfer-Encoding: \tchunked\r\n\r\n0\r\n\r\n", {},
     lambda ex: _flags(ex) & F_CHUNKED and _flags(ex) & F_TE_FIELD),
    ("TE-identity-before-chunked", POST + b"Transfer-Encoding: identity\r\nTransfer-Encoding: "
     b"Identity , CHUNKED\r\n\r\n0\r\n\r\n", {},
     lambda ex: _flags(ex) & F_CHUNKED and len(ex.completed) == 1),
    ("any-method-option", b"get / HTTP/1.1\r\n" + HOST + b"\r\n", {"any_method": True},
     lambda ex: _req(ex).method == b"get"),
    ("underscore-name-flagged", GET + b"X_Y: 1\r\n\r\n", {},
     lambda ex: _flags(ex) & F_UNDERSCORE_NAME and _req(ex).get(b"x_y") == b"1"),
    ("obs-text-in-target", b"GET /\xc3\xa0 HTTP/1.1\r\n" + HOST + b"\r\n", {},
     lambda ex: _req(ex).target == b"/\xc3\xa0"),
]


@pytest.mark.parametrize(("raw", "limits", "check"),
                         [pytest.param(*row[1:], id=row[0]) for row in ACCEPT])
def test_accepted(raw: bytes, limits: dict[str, Any], check: Callable[[Exchange], object]) -> None:
    ex = outcome(raw, **limits) if len(raw) < 20000 else exchange(raw, **limits)
    assert ex.error is None, ex
    assert check(ex), ex


# ---------------------------------------------------------------------------------- persistence

# (id, request, keep_alive, flags that must be set)
PERSISTENCE = [
    ("R32-http11-default", GET + b"\r\n", True, F_HOST),
    ("R32-http11-close", GET + b"Connection: close\r\n\r\n", False, F_CONN_CLOSE),
    ("R32-http11-close-in-list", GET + b"Connection: foo, Close\r\n\r\n", False, F_CONN_CLOSE),
    ("R32-http10-default", b"GET / HTTP/1.0\r\n\r\n", False, 0),
    ("R32-http10-keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True,
     F_CONN_KEEP_ALIVE),
    ("R32-http10-keep-alive-and-close", b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
     False, F_CONN_KEEP_ALIVE | F_CONN_CLOSE),
]


@pytest.mark.parametrize(("raw", "keep_alive", "flags"),
                         [pytest.param(*row[1:], id=row[0]) for row in PERSISTENCE])
def test_persistence(raw: bytes, keep_alive: bool, flags: int) -> None:
    req = HeadParser(ParserLimits()).parse(raw)
    assert req is not None and req.keep_alive is keep_alive and req.flags & flags == flags
    conn = Connection(ParserLimits())
    conn.receive_data(raw + GET + b"\r\n")  # R33: a second request in the same write
    assert isinstance(conn.next_event(), Request)
    assert isinstance(conn.next_event(), EndOfMessage)
    response = conn.send_full_response(200, [], b"ok")
    assert conn.keep_alive is keep_alive
    assert (b"connection: close" in response) is not keep_alive
    if keep_alive:
        conn.start_next_cycle()
        assert isinstance(conn.next_event(), Request)
    else:
        with pytest.raises(LocalProtocolError):
            conn.start_next_cycle()  # R33: the pipelined request is never parsed


# ---------------------------------------------------------------------------------- Upgrade


@pytest.mark.parametrize(("fields", "upgrade"), [
    (b"Connection: Upgrade\r\nUpgrade: websocket\r\n", b"websocket"),
    (b"Connection: keep-alive, upgrade\r\nUpgrade: h2c\r\n", b"h2c"),
    (b"Upgrade: websocket\r\n", None),  # Upgrade without "upgrade" in Connection: no switch
    (b"Connection: upgrade\r\n", None),
])
def test_upgrade_flag(fields: bytes, upgrade: bytes | None) -> None:
    req = HeadParser(ParserLimits()).parse(GET + fields + b"\r\n")
    assert req is not None and req.upgrade == upgrade
    assert bool(req.flags & F_UPGRADE) is (upgrade is not None)
    assert bool(req.flags & F_UPGRADE_FIELD) is (b"Upgrade:" in fields)


def test_upgrade_hands_over_the_following_bytes() -> None:
    conn = Connection(ParserLimits())
    conn.receive_data(GET + b"Connection: upgrade\r\nUpgrade: ws\r\n\r\n\x81\x05hello")
    req = conn.next_event()
    assert isinstance(req, Request) and req.upgrade == b"ws"
    assert isinstance(conn.next_event(), EndOfMessage)
    assert conn.send_informational(101, [(b"upgrade", b"ws")]).startswith(b"HTTP/1.1 101 ")
    assert conn.next_event() is PAUSED
    assert conn.trailing_data() == b"\x81\x05hello"


# ---------------------------------------------------------------------------------- Expect


def test_expect_continue_only_when_waiting() -> None:
    conn = Connection(ParserLimits())
    conn.receive_data(POST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert isinstance(conn.next_event(), Request)
    assert conn.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.send_continue() == b""  # once
    conn10 = Connection(ParserLimits())  # R36: HTTP/1.0 never gets a 100
    conn10.receive_data(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert isinstance(conn10.next_event(), Request)
    assert conn10.send_continue() == b""


# ---------------------------------------------------------------------------------- responses


def test_no_body_responses() -> None:
    """R39: no Content-Length on a 204; no body bytes for HEAD (its Content-Length is kept)."""
    conn = Connection(ParserLimits())
    conn.receive_data(GET + b"\r\n" + b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(conn.next_event(), Request) and isinstance(conn.next_event(), EndOfMessage)
    out = conn.send_response(204, [(b"content-length", b"5")])
    assert b"content-length" not in out.lower()
    conn.send_end()
    conn.start_next_cycle()
    assert isinstance(conn.next_event(), Request) and isinstance(conn.next_event(), EndOfMessage)
    head = conn.send_response(200, [(b"content-length", b"5")])
    assert b"content-length: 5" in head and conn.send_data(b"hello") == b""


# ---------------------------------------------------------------------------------- pipelining and EOF


def test_pipelining_in_one_buffer_keeps_order() -> None:
    """R34: requests pipelined in one write come out in order, each after the previous answer."""
    raw = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3))
    raw += POST + b"Content-Length: 3\r\n\r\nabc" + CHUNKED + b"1\r\nz\r\n0\r\n\r\n"
    ex = outcome(raw)
    assert [m.req.target for m in ex.completed] == [b"/0", b"/1", b"/2", b"/", b"/"]
    assert [m.body for m in ex.completed[3:]] == [b"abc", b"z"]
    assert ex.end == "need-data"


# (id, bytes, what the server sees at EOF)
EOF_CASES = [
    ("eof-between-requests", GET + b"\r\n", "eof-complete", None),
    ("eof-inside-head", GET + b"X: y\r\n", "error", (400, "incomplete_request")),
    ("eof-inside-request-line", b"GET / HT", "error", (400, "incomplete_request")),
    ("eof-inside-length-body", POST + b"Content-Length: 5\r\n\r\nhel", "eof-incomplete", None),
    ("P11-eof-after-last-chunk", CHUNKED + b"5\r\nhello\r\n0\r\n", "eof-incomplete", None),
    ("P11-eof-inside-chunk", CHUNKED + b"5\r\nhel", "eof-incomplete", None),
    ("P11-eof-inside-trailers", CHUNKED + b"0\r\nX: y\r\n", "eof-incomplete", None),
    ("eof-after-leading-empty-line", b"\r\n", "error", (400, "incomplete_request")),
]


@pytest.mark.parametrize(("raw", "end", "error"),
                         [pytest.param(*row[1:], id=row[0]) for row in EOF_CASES])
def test_incomplete_at_eof(raw: bytes, end: str, error: tuple[int, str] | None) -> None:
    ex = outcome(raw, eof=True)
    assert (ex.end, ex.error) == (end, error), ex
    if end != "eof-complete":  # the cut request is never delivered as complete
        assert all(m.complete for m in ex.msgs[:-1]) and not (ex.msgs and ex.msgs[-1].complete)


# ---------------------------------------------------------------------------------- the C entry points


def test_head_parser_directly() -> None:
    p = HeadParser(ParserLimits())
    raw = b"garbage" + GET + b"Content-Length: 0\r\n\r\n"
    assert p.parse(raw, 7) is not None and p.length == len(raw) - 7
    req = p.parse(b"POST /x HTTP/1.0\r\nContent-Length: 12\r\n\r\n")
    assert req is not None and req.flags & F_LENGTH and req.content_length == 12
    assert req.http_version == "1.0" and not req.keep_alive
    with pytest.raises(ProtocolError) as e:
        p.parse(b"GET / HTTP/1.1\r\nX: \x01\r\n\r\n")
    assert (e.value.status, e.value.reason, e.value.offset) == (400, "control_byte", 19)
    assert p.parse(GET + b"\r\n") is not None  # a new head after an error


def test_chunked_decoder_directly() -> None:
    d = ChunkedDecoder(ParserLimits())
    data, consumed, done = d.decode(b"xx5;a=1\r\nhello\r\n0\r\nT", 2)
    assert (data, consumed, done) == (b"hello", 17, True)
    assert d.total == 5
    d.reset()
    assert d.decode(b"3\r\nab") == (b"ab", 5, False)
    assert d.decode(b"c\r\n0\r\n") == (b"c", 6, True)
    d.reset()
    # the data before a bad byte comes out first; the error is raised by the next call, at the byte
    assert d.decode(b"5\r\nhelloXX") == (b"hello", 8, False)
    with pytest.raises(ProtocolError) as e:
        d.decode(b"5\r\nhelloXX", 8)
    assert (e.value.status, e.value.reason, e.value.offset) == (400, "bad_chunk_data_end", 8)
    with pytest.raises(ProtocolError):
        d.decode(b"0\r\n\r\n")  # sticky until reset()
    d.reset()
    assert d.decode(b"0\r\n") == (b"", 3, True)


def test_chunked_decoder_output_is_capped_per_call() -> None:
    d = ChunkedDecoder(ParserLimits())
    body = b"x" * 200_000
    raw = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    out, pos = [], 0
    while True:
        data, consumed, done = d.decode(raw, pos)
        assert len(data) <= 65536
        out.append(data)
        pos += consumed
        if done:
            break
    assert b"".join(out) == body and raw[pos:] == b"\r\n"


# ---------------------------------------------------------------------------------- split independence


# Inputs where a byte error, a limit and a syntax error meet: the error must be the same however the
# bytes arrive (the C reports, within a line, limit / CTL / bare CR in byte order before syntax).
SMALL = {"max_field_size": 20, "max_request_line": 30, "max_fields": 3}
SPLIT_ERRORS = [
    ("ctl-after-syntax-error-in-method", b"G@T\x00 / HTTP/1.1\r\n\r\n", "control_byte", {}),
    ("ctl-after-space-in-name", GET + b"Foo bar\x01: x\r\n\r\n", "control_byte", {}),
    ("ctl-after-limit", GET + b"X" + b"a" * 30 + b"\x01\r\n\r\n", "field_too_large", SMALL),
    ("ctl-before-limit", GET + b"X" + b"a" * 5 + b"\x01" + b"a" * 30 + b"\r\n\r\n",
     "control_byte", SMALL),
    ("bare-cr-then-ctl", GET + b"X: a\r\x01\r\n\r\n", "bare_cr", {}),
    ("ctl-then-bare-lf", GET + b"X: a\x01b\n\r\n", "control_byte", {}),
    ("bare-cr-in-target-then-ctl", b"GET /a\rb\x01 HTTP/1.1\r\n\r\n", "bare_cr", {}),
    ("ctl-in-too-many-fields", GET + b"X: y\r\n" * 2 + b"Y\x01\r\n\r\n", "control_byte", SMALL),
    ("ctl-in-trailer", CHUNKED + b"0\r\nX: \x7f\r\n\r\n", "control_byte", {}),
    ("trailer-limit-then-ctl", CHUNKED + b"0\r\nX: " + b"a" * 30 + b"\x7f\r\n\r\n",
     "field_too_large", {"max_field_size": 30}),
    ("request-line-limit-then-ctl", b"GET /" + b"a" * 40 + b"\x00 HTTP/1.1\r\n\r\n",
     "request_line_too_long", SMALL),
    ("head-limit-inside-a-line", GET + b"X: " + b"a" * 100 + b"\x01\r\n\r\n", "head_too_large",
     {"max_head_size": 60}),
    ("head-limit-at-the-final-lf", GET + b"X: abc\r\n\r\n", "head_too_large",
     {"max_head_size": len(GET) + 9}),
    ("chunk-data-then-bad-end", CHUNKED + b"5\r\nhelloX", "bad_chunk_data_end", {}),
]


@pytest.mark.parametrize(("raw", "reason", "limits"),
                         [pytest.param(*r[1:], id=r[0]) for r in SPLIT_ERRORS])
def test_error_does_not_depend_on_the_split(raw: bytes, reason: str,
                                            limits: dict[str, Any]) -> None:
    ex = outcome(raw, **limits)
    assert ex.error is not None and ex.error[1] == reason


def test_chunk_line_limit_excludes_its_crlf() -> None:
    """max_chunk_line counts the size and extensions, not the CRLF (ParserLimits)."""
    ok = outcome(CHUNKED + b"1;" + b"a" * 8 + b"\r\nx\r\n0\r\n\r\n", max_chunk_line=10)
    assert ok.error is None and ok.completed[0].body == b"x"
    bad = outcome(CHUNKED + b"1;" + b"a" * 9 + b"\r\nx\r\n0\r\n\r\n", max_chunk_line=10)
    assert bad.error == (400, "chunk_extension_too_long")
    # per message: ";" and the extension bytes count, CRLFs do not
    ok = outcome(CHUNKED + b"1;abcd\r\nx\r\n1;abcd\r\ny\r\n0\r\n\r\n", max_chunk_ext=10)
    assert ok.error is None and ok.completed[0].body == b"xy"
    bad = outcome(CHUNKED + b"1;abcd\r\nx\r\n1;abcde\r\ny\r\n0\r\n\r\n", max_chunk_ext=10)
    assert bad.error == (400, "chunk_extension_too_long")


# (id, prefix, the byte repeated after it, bytes of it accepted before the error, reason)
CAPS = [
    ("P21-request-line", b"GET /", b"a", 4094 - 5 + 1, "request_line_too_long"),
    ("P22-one-field", GET + b"X: ", b"a", ParserLimits().max_field_size - 3 + 1, "field_too_large"),
    ("P9-chunk-extension", CHUNKED + b"1;", b"a", 4096 - 2, "chunk_extension_too_long"),
    ("P22-trailer-field", CHUNKED + b"0\r\nX: ", b"a", ParserLimits().max_field_size - 3 + 1,
     "field_too_large"),
]


@pytest.mark.parametrize(("prefix", "filler", "accepted", "reason"),
                         [pytest.param(*c[1:], id=c[0]) for c in CAPS])
def test_caps_fail_as_soon_as_crossed(prefix: bytes, filler: bytes, accepted: int,
                                      reason: str) -> None:
    """P9/P21/P22: a flood fails as soon as it passes its cap (the +1 of a line limit is the room
    for its CR), not when a line end finally arrives: no more than the cap is ever buffered."""
    conn = Connection(ParserLimits())
    conn.receive_data(prefix + filler * accepted)
    while (ev := conn.next_event()) is not NEED_DATA:
        assert isinstance(ev, Request | Data | EndOfMessage)
    conn.receive_data(filler)
    with pytest.raises(ProtocolError) as e:
        while conn.next_event() is not NEED_DATA:
            pass
    assert e.value.reason == reason
