"""The sans-I/O connection: bytes in, events out; response events in, bytes out. No sockets."""

from __future__ import annotations

import pytest
from tricorn.core.connection import Connection, Ours, Their
from tricorn.core.errors import LocalProtocolError, ProtocolError
from tricorn.core.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)
from tricorn.core.limits import ParserLimits


def conn(**limits: object) -> Connection:
    return Connection(ParserLimits(**limits))  # type: ignore[arg-type]


def events_of(c: Connection) -> list[object]:
    """Pull events until the connection needs data, pauses or closes."""
    out: list[object] = []
    while True:
        ev = c.next_event()
        out.append(ev)
        if ev is NEED_DATA or ev is PAUSED or isinstance(ev, ConnectionClosed):
            return out


def respond(c: Connection, body: bytes = b"ok") -> bytes:
    return c.send_full_response(200, [(b"content-type", b"text/plain")], body)


def test_get_request_events() -> None:
    c = conn()
    c.receive_data(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n")
    req, eom, paused = events_of(c)
    assert isinstance(req, Request)
    assert (req.method, req.target, req.http_version) == (b"GET", b"/a?b=1", "1.1")
    assert req.headers == [(b"host", b"x"), (b"user-agent", b"t")]
    assert req.keep_alive and not req.has_body
    assert eom == EndOfMessage([]) and paused is PAUSED


def test_content_length_body_arrives_in_pieces() -> None:
    c = conn()
    c.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
    assert [type(e) for e in events_of(c)] == [Request, Data, type(NEED_DATA)]
    c.receive_data(b"lo worl")
    assert events_of(c) == [Data(b"lo worl"), EndOfMessage([]), PAUSED]


def test_chunked_body_with_trailers() -> None:
    c = conn()
    c.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n")
    evs = events_of(c)
    assert isinstance(evs[0], Request) and evs[0].chunked
    assert b"".join(e.data for e in evs if isinstance(e, Data)) == b"hello world"
    assert evs[-2] == EndOfMessage([(b"x-checksum", b"abc")])


def test_pipelined_requests_are_answered_in_order() -> None:
    c = conn()
    c.receive_data(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    first = events_of(c)
    assert first[0].target == b"/1" and first[-1] is PAUSED  # type: ignore[union-attr]
    assert c.next_event() is PAUSED  # the second waits for our response
    respond(c)
    c.start_next_cycle()
    second = events_of(c)
    assert second[0].target == b"/2"  # type: ignore[union-attr]


def test_http10_closes_unless_keep_alive() -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    events_of(c)
    out = respond(c)
    assert not c.keep_alive and b"connection: close\r\n" in out
    with pytest.raises(LocalProtocolError):
        c.start_next_cycle()

    c = conn()
    c.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    events_of(c)
    out = respond(c)
    assert c.keep_alive and b"connection: keep-alive\r\n" in out
    c.start_next_cycle()


def test_connection_close_stops_the_pipeline() -> None:
    c = conn()
    c.receive_data(b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    assert b"connection: close" in respond(c)
    assert not c.keep_alive


def test_response_framing() -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    head = c.send_response(200, [(b"X-A", b"1")])
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked\r\n" in head
    assert c.send_data(b"abc") == b"3\r\nabc\r\n"
    assert c.send_data(b"") == b""
    assert c.send_end([(b"x-t", b"v")]) == b"0\r\nx-t: v\r\n\r\n"
    assert c.keep_alive


def test_http10_response_without_length_is_close_delimited() -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    events_of(c)
    head = c.send_response(200, [])
    assert b"transfer-encoding" not in head and b"connection: close" in head
    assert c.send_data(b"raw") == b"raw"
    c.send_end()
    assert not c.keep_alive


def test_head_response_has_no_body() -> None:
    c = conn()
    c.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    head = c.send_response(200, [(b"content-length", b"5")])
    assert b"content-length: 5\r\n" in head
    assert c.send_data(b"hello") == b""
    c.send_end()
    assert c.keep_alive


def test_content_length_is_enforced() -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    c.send_response(200, [(b"Content-Length", b"3")])
    with pytest.raises(LocalProtocolError):
        c.send_data(b"toolong")

    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    c.send_response(200, [(b"Content-Length", b"3")])
    c.send_data(b"ab")
    c.send_end()
    assert not c.keep_alive  # shorter than declared: the client cannot find the end


@pytest.mark.parametrize("header", [
    (b"X-A", b"v\r\nSet-Cookie: x=1"),
    (b"X-A", b"v\nx"),
    (b"X-A", b"v\x00"),
    (b"X A", b"v"),
    (b"", b"v"),
    (b"X:A", b"v"),
])
def test_response_splitting_is_refused(header: tuple[bytes, bytes]) -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    with pytest.raises(LocalProtocolError):
        c.send_response(200, [header])
    assert c.our_state is Ours.IDLE  # nothing was produced: the server can still send a 500


def test_no_content_strips_content_length() -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    head = c.send_response(204, [(b"content-length", b"0")])
    assert b"content-length" not in head and b"transfer-encoding" not in head


def test_expect_100_continue() -> None:
    c = conn()
    c.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    req = c.next_event()
    assert isinstance(req, Request) and req.expect_continue
    assert c.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert c.send_continue() == b""  # once
    c.receive_data(b"abc")
    assert events_of(c)[:2] == [Data(b"abc"), EndOfMessage([])]


def test_expect_without_reading_the_body_closes() -> None:
    c = conn()
    c.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    c.next_event()
    out = c.send_full_response(401, [], b"no")
    assert not c.keep_alive and b"100 Continue" not in out


def test_http10_expect_is_ignored() -> None:
    c = conn()
    c.receive_data(b"POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n")
    req = c.next_event()
    assert isinstance(req, Request) and not req.expect_continue
    assert c.send_continue() == b""


def test_protocol_error_is_sticky() -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    with pytest.raises(ProtocolError) as err:
        c.next_event()
    assert err.value.status == 400 and err.value.reason == "bad_content_length"
    assert c.their_state is Their.ERROR and not c.keep_alive
    with pytest.raises(ProtocolError):
        c.next_event()


def test_valid_then_invalid_pipelined() -> None:
    c = conn()
    c.receive_data(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events_of(c)[0].target == b"/1"  # type: ignore[union-attr]
    respond(c)
    c.start_next_cycle()
    with pytest.raises(ProtocolError):
        c.next_event()


def test_eof_cases() -> None:
    c = conn()
    c.receive_data(b"")
    assert c.next_event() == ConnectionClosed(True)

    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHo")
    assert c.next_event() is NEED_DATA
    c.receive_data(b"")
    with pytest.raises(ProtocolError) as err:
        c.next_event()
    assert err.value.reason == "incomplete_request"

    c = conn()
    c.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
    evs = events_of(c)
    assert evs[-1] is NEED_DATA
    c.receive_data(b"")
    assert c.next_event() == ConnectionClosed(False)  # never a complete body


def test_upgrade_hands_over_trailing_bytes() -> None:
    c = conn()
    c.receive_data(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                   b"\x81\x85frame")
    req = c.next_event()
    assert isinstance(req, Request) and req.upgrade == b"websocket"
    out = c.send_informational(101, [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")])
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert c.trailing_data() == b"\x81\x85frame"
    assert c.next_event() is PAUSED


def test_one_byte_at_a_time() -> None:
    raw = (b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
    c = conn()
    seen: list[object] = []
    for i in range(len(raw)):
        c.receive_data(raw[i:i + 1])
        while (ev := c.next_event()) not in (NEED_DATA, PAUSED):
            seen.append(ev)
        if ev is PAUSED:
            respond(c)
            c.start_next_cycle()
            while (ev := c.next_event()) not in (NEED_DATA, PAUSED):
                seen.append(ev)
    kinds = [type(e).__name__ for e in seen]
    assert kinds.count("Request") == 2 and kinds.count("EndOfMessage") == 2
    assert b"".join(e.data for e in seen if isinstance(e, Data)) == b"abc"


def test_closing_server_ends_persistence() -> None:
    c = conn()
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    events_of(c)
    c.closing = True
    assert b"connection: close" in respond(c)
