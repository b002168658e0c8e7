"""Connection.send_data_external: body bytes the server writes itself (os.sendfile)."""

from __future__ import annotations

import pytest
from tricorn.core.connection import Connection
from tricorn.core.errors import LocalProtocolError
from tricorn.core.limits import ParserLimits


def started(headers: list[tuple[bytes, bytes]], request: bytes = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
            ) -> Connection:
    c = Connection(ParserLimits())
    c.receive_data(request)
    c.next_event()
    c.next_event()
    c.send_response(200, headers)
    return c


def test_length_framing_is_accounted() -> None:
    c = started([(b"content-length", b"10")])
    c.send_data_external(4)
    assert c.send_data(b"xx") == b"xx"
    c.send_data_external(4)
    assert c.send_end() == b"" and c.keep_alive
    c.start_next_cycle()


def test_short_body_closes_and_excess_raises() -> None:
    c = started([(b"content-length", b"10")])
    c.send_data_external(3)
    c.send_end()
    assert not c.keep_alive
    c = started([(b"content-length", b"2")])
    with pytest.raises(LocalProtocolError):
        c.send_data_external(3)
    assert not c.keep_alive


def test_other_framings() -> None:
    with pytest.raises(LocalProtocolError):
        started([]).send_data_external(1)  # chunked
    c = started([], b"GET / HTTP/1.0\r\n\r\n")  # close-delimited
    c.send_data_external(100)
    head = started([(b"content-length", b"5")], b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    head.send_data_external(0)
    with pytest.raises(LocalProtocolError):
        head.send_data_external(5)
    with pytest.raises(LocalProtocolError):
        Connection(ParserLimits()).send_data_external(1)
