"""Connection.send_response additions: default Server/Date fields yield to the application's,
the date field can be off, a server-known body size frames the response, validated heads are cached
(also for unhashable or one-shot header iterables), and bytes sent by sendfile are accounted."""

from __future__ import annotations

import pytest
from tricorn.core.connection import Connection
from tricorn.core.errors import LocalProtocolError
from tricorn.core.limits import ParserLimits


def ready(**kwargs: object) -> Connection:
    c = Connection(ParserLimits(), server_line=b"server: tricorn\r\n", **kwargs)  # type: ignore[arg-type]
    c.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c.next_event()
    c.next_event()
    return c


def test_defaults_and_app_overrides() -> None:
    head = ready().send_response(200, [(b"x-a", b"1")])
    assert b"server: tricorn\r\n" in head and b"date: " in head
    head = ready().send_response(200, [(b"Server", b"app"), (b"date", b"then")])
    assert head.count(b"server:") + head.count(b"Server:") == 1 and b"Server: app" in head
    assert head.count(b"date:") == 1 and b"date: then" in head
    head = ready(date_header=False).send_response(200, [])
    assert b"date:" not in head


def test_content_length_argument() -> None:
    c = ready()
    head = c.send_response(200, [], 5)
    assert b"content-length: 5\r\n" in head and b"transfer-encoding" not in head
    assert c.send_data(b"hello") == b"hello"
    c = ready()
    head = c.send_response(200, [(b"content-length", b"3")], 5)
    assert b"content-length: 3\r\n" in head and b"content-length: 5" not in head
    c = ready()
    head = c.send_response(200, [(b"transfer-encoding", b"chunked")], 5)
    assert b"transfer-encoding: chunked" in head and b"content-length" not in head


def test_head_cache_gives_the_same_bytes_and_still_validates() -> None:
    first = ready().send_response(200, [(b"content-type", b"text/plain")])
    second = ready().send_response(200, [(b"content-type", b"text/plain")])
    assert first.split(b"\r\n")[3:] == second.split(b"\r\n")[3:]
    listed = ready().send_response(200, [[b"content-type", b"text/plain"]])  # type: ignore[list-item]
    assert listed.split(b"\r\n")[3:] == first.split(b"\r\n")[3:]
    once = ready().send_response(200, iter([(b"x-i", b"1")]))
    assert b"x-i: 1\r\n" in once
    for _ in range(2):  # an invalid head is never cached as valid
        with pytest.raises(LocalProtocolError):
            ready().send_response(200, [(b"x", b"a\nb")])
    c = ready()
    c.send_response(200, [(b"connection", b"close")])
    assert not c.keep_alive


def test_sent_directly() -> None:
    c = ready()
    c.send_response(200, [], 10)
    c.sent_directly(10)
    assert c.send_end() == b"" and c.keep_alive
    c = ready()
    c.send_response(200, [], 10)
    with pytest.raises(LocalProtocolError):
        c.sent_directly(11)
    c = ready()
    c.send_response(200, [])  # chunked: not for sendfile accounting
    with pytest.raises(LocalProtocolError):
        c.sent_directly(1)
    c = Connection(ParserLimits())
    c.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    c.next_event()
    c.next_event()
    c.send_response(200, [])  # HTTP/1.0, no length: close-delimited, any count
    c.sent_directly(12345)
    c = ready()
    c.send_response(204, [])
    c.sent_directly(0)
    with pytest.raises(LocalProtocolError):
        c.sent_directly(1)
