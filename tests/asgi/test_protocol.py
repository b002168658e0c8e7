"""HttpProtocol and Cycle over a fake transport: exact bytes, flow control, deadlines, the app
contract. Fast: no sockets, one private event loop per test."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from asgi_support import parse_response, responses
from tricorn.asgi.errors import ASGIProtocolError, ClientDisconnected
from tricorn.asgi.protocol import T_BODY, T_HEAD, T_KEEPALIVE, T_LINGER, T_NONE, T_WRITE

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def app_from(fn: Any) -> Any:
    return fn


# -------------------------------------------------------------------------------------- basics


def test_get_response_bytes_and_keep_alive(harness: Any) -> None:
    h = harness(hello)
    out = h.request(GET)
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines[1] == b"server: tricorn"
    assert lines[2].startswith(b"date: ") and lines[2].endswith(b" GMT")
    assert lines[3:] == [b"content-type: text/plain", b"content-length: 13"]
    assert body == b"Hello, world!"
    assert not h.transport.closed
    assert h.proto.timer == T_KEEPALIVE
    assert h.request(GET).endswith(b"Hello, world!")  # the connection is reused
    assert h.state.total_requests == 2


def test_head_has_no_body_but_the_length(harness: Any) -> None:
    h = harness(hello)
    out = h.request(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.endswith(b"content-length: 13\r\n\r\n")


def test_http10_close_and_keep_alive(harness: Any) -> None:
    h = harness(hello)
    out = h.request(b"GET / HTTP/1.0\r\n\r\n")
    assert b"connection: close" in out and out.endswith(b"Hello, world!")
    h.run()
    assert h.transport.closed
    h2 = harness(hello)
    out = h2.request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert b"connection: keep-alive" in out and not h2.transport.closed


def test_streaming_response_is_chunked_on_11_and_close_delimited_on_10(harness: Any) -> None:
    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"bb", b""):
            await send({"type": "http.response.body", "body": part, "more_body": bool(part)})

    h = harness(stream)
    status, headers, body, rest = parse_response(h.request(GET))
    assert headers["transfer-encoding"] == "chunked" and body == b"abb" and rest == b""
    h10 = harness(stream)
    out = h10.request(b"GET / HTTP/1.0\r\n\r\n")
    assert b"connection: close" in out and out.endswith(b"\r\n\r\nabb")
    h10.run()
    assert h10.transport.closed


def test_app_content_length_is_used_and_enforced(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd"})

    h = harness(app)
    status, headers, body, _ = parse_response(h.request(GET))
    assert headers["content-length"] == "4" and body == b"abcd" and not h.transport.closed


def test_short_body_closes_the_connection(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"abc"})

    h = harness(app)
    h.request(GET)
    h.run()
    assert h.transport.closed


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_get_no_length(harness: Any, status: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    out = harness(app).request(GET)
    assert b"content-length" not in out and b"transfer-encoding" not in out
    assert out.endswith(b"\r\n\r\n")


def test_app_server_and_date_headers_replace_the_defaults(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"server", b"mine"), (b"date", b"yesterday")]})
        await send({"type": "http.response.body", "body": b""})

    out = harness(app).request(GET)
    assert out.count(b"server:") == 1 and b"server: mine" in out
    assert out.count(b"date:") == 1 and b"date: yesterday" in out


def test_server_and_date_headers_can_be_off_and_extra_headers_added(harness: Any) -> None:
    h = harness(hello, server_header=False, date_header=False,
                extra_headers=((b"x-served-by", b"t"),))
    out = h.request(GET)
    assert b"server:" not in out and b"date:" not in out and b"x-served-by: t\r\n" in out


# ---------------------------------------------------------------------------------------- scope


def test_scope_is_complete(harness: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await hello(scope, receive, send)

    h = harness(app, root_path="/api")
    h.state.app_state["db"] = "pool"
    h.request(b"GET /caf%C3%A9/x%2Fy?q=1&r=%20 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n")
    scope = seen[0]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1" and scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/café/x/y"
    assert scope["raw_path"] == b"/api/caf%C3%A9/x%2Fy"
    assert scope["query_string"] == b"q=1&r=%20"
    assert scope["headers"] == [(b"host", b"x"), (b"x-a", b"1")]
    assert scope["client"] == ("127.0.0.1", 40000)
    assert scope["server"] == ("127.0.0.1", 8000)
    assert scope["state"] == {"db": "pool"} and scope["state"] is not h.state.app_state
    assert set(scope["extensions"]) == {
        "http.response.trailers", "http.response.early_hint", "http.response.pathsend"}


def test_absolute_form_asterisk_and_unix_server(harness: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await hello(scope, receive, send)

    h = harness(app)
    h.request(b"GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n")
    h.request(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (seen[0]["path"], seen[0]["raw_path"], seen[0]["query_string"]) == ("/a/b", b"/a/b", b"c=d")
    assert seen[1]["path"] == "*"
    from asgi_support import FakeTransport

    t = FakeTransport(peer="", sock="/tmp/x.sock")
    proto = h.new_connection(t)
    h.feed(GET, proto)
    h.run()
    assert seen[2]["client"] is None and seen[2]["server"] == ("/tmp/x.sock", None)


def test_state_copy_is_shallow_and_per_request(harness: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["state"]["mine"] = len(seen)
        seen.append(scope["state"])
        await hello(scope, receive, send)

    h = harness(app)
    shared: list[int] = []
    h.state.app_state["shared"] = shared
    h.request(GET)
    h.request(GET)
    assert "mine" not in h.state.app_state
    assert seen[0]["shared"] is seen[1]["shared"] is shared


def test_proxy_headers_from_a_trusted_peer_only(harness: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await hello(scope, receive, send)

    proxied = (b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n"
               b"X-Forwarded-Proto: https\r\n\r\n")
    h = harness(app)  # 127.0.0.1 is trusted by default
    h.request(proxied)
    assert seen[-1]["client"] == ("203.0.113.7", 0) and seen[-1]["scheme"] == "https"
    h2 = harness(app, forwarded_allow_ips=("10.0.0.0/8",))
    h2.request(proxied)
    assert seen[-1]["client"] == ("127.0.0.1", 40000) and seen[-1]["scheme"] == "http"
    h3 = harness(app, proxy_headers=False)
    h3.request(proxied)
    assert seen[-1]["scheme"] == "http"


def test_contradictory_proxy_scheme_is_400(harness: Any) -> None:
    h = harness(hello)
    out = h.request(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n"
                    b"X-Forwarded-Ssl: off\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")


# ----------------------------------------------------------------------------------- request body


def test_body_in_pieces_and_chunked(harness: Any) -> None:
    h = harness(echo)
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
    h.run()
    h.feed(b"lo worl")
    h.run()
    assert parse_response(h.transport.take())[2] == b"hello worl"
    out = h.request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nX-T: 1\r\n\r\n")
    assert parse_response(out)[2] == b"hello!"


def test_receive_messages_follow_the_body(harness: Any) -> None:
    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            got.append(message)
            if not message.get("more_body"):
                break
        await hello(scope, receive, send)
        got.append(await receive())  # after the response: disconnect

    h = harness(app)
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab")
    h.run()
    h.feed(b"cdef")
    h.run()
    assert got == [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cdef", "more_body": False},
        {"type": "http.disconnect"},
    ]


def test_expect_100_continue_sent_only_when_the_app_reads(harness: Any) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    h = harness(echo)
    h.feed(head)
    h.run()
    assert h.transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    h.feed(b"abc")
    h.run()
    assert parse_response(h.transport.take())[2] == b"abc"

    h2 = harness(hello)  # never reads: no 100, and the connection closes after the response
    out = h2.request(head)
    assert out.startswith(b"HTTP/1.1 200 ") and b"100 Continue" not in out
    assert b"connection: close" in out
    assert h2.transport.eof_written  # lingering close: unread body may still come


def test_read_flow_control_pauses_and_resumes(harness: Any) -> None:
    release = asyncio.Event()
    got = bytearray()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        while True:
            message = await receive()
            got.extend(message["body"])
            if not message["more_body"]:
                break
        await hello(scope, receive, send)

    h = harness(app, read_buffer_size=1024)
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"a" * 2000)
    h.run()
    assert not h.transport.reading  # over the high-water mark, app not reading
    release.set()
    h.run()
    assert h.transport.reading  # the app took it: reading again
    h.feed(b"b" * 3000)
    h.run()
    assert bytes(got) == b"a" * 2000 + b"b" * 3000
    assert h.transport.take().startswith(b"HTTP/1.1 200")


def test_write_flow_control_waits_for_drain(harness: Any) -> None:
    progress: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            progress.append(i)
        await send({"type": "http.response.body", "body": b""})

    h = harness(app)
    h.proto.pause_writing()
    h.feed(GET)
    h.run()
    assert progress == [] and h.proto.timer == T_WRITE  # blocked in the first send
    h.proto.resume_writing()
    h.run()
    assert progress == [0, 1, 2] and h.proto.timer == T_KEEPALIVE


# -------------------------------------------------------------------------------------- pipelining


def test_pipelined_requests_answered_in_order_reading_paused(harness: Any) -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        order.append(scope["path"])
        if scope["path"] == "/slow":
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    h = harness(app)
    h.feed(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    h.run()
    assert order == ["/slow"] and not h.transport.reading and h.transport.data == b""
    gate.set()
    h.run()
    assert [r[2] for r in responses(h.transport.take())] == [b"/slow", b"/a", b"/b"]
    assert order == ["/slow", "/a", "/b"] and h.transport.reading


def test_pipelined_garbage_after_a_valid_request(harness: Any) -> None:
    h = harness(hello)
    out = h.request(GET + b"GARBAGE\r\n\r\n" + GET)
    got = responses(out)
    assert [g[0] for g in got] == [200, 400]
    assert h.transport.eof_written and h.state.total_requests == 1


# -------------------------------------------------------------------------------------- deadlines


def test_header_deadline_armed_at_connection(harness: Any) -> None:
    h = harness(hello, timeout_header_read=5)
    assert h.proto.timer == T_HEAD and h.proto.deadline > 0
    h.expire()
    assert h.transport.closed and h.transport.data == b""


def test_partial_head_gets_408_and_deadline_is_not_reset_per_byte(harness: Any) -> None:
    h = harness(hello, timeout_header_read=5)
    deadline = h.proto.deadline
    h.feed(b"GET / HTTP/1.1\r\n")
    h.feed(b"X-A: 1\r\n")
    assert h.proto.deadline == deadline
    h.expire()
    assert h.transport.take().startswith(b"HTTP/1.1 408 ")
    assert h.transport.eof_written and h.proto.timer == T_LINGER
    h.expire()
    assert h.transport.aborted


def test_keep_alive_deadline_closes_idle_connection(harness: Any) -> None:
    h = harness(hello, keep_alive=2)
    h.request(GET)
    assert h.proto.timer == T_KEEPALIVE
    h.feed(b"GET / HT")  # the next head started: now bounded by the head deadline
    assert h.proto.timer == T_HEAD
    h2 = harness(hello, keep_alive=2)
    h2.request(GET)
    h2.expire()
    assert h2.transport.closed


def test_keep_alive_zero_closes_after_each_response(harness: Any) -> None:
    h = harness(hello, keep_alive=0)
    out = h.request(GET)
    assert b"connection: close" in out
    h.run()
    assert h.transport.closed


def test_body_deadline_only_while_the_app_waits(harness: Any) -> None:
    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())

    h = harness(app, timeout_body_read=3)
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    h.run()
    assert h.proto.timer == T_BODY
    h.expire()
    assert h.transport.take().startswith(b"HTTP/1.1 408 ")
    assert got[-1] == {"type": "http.disconnect"}


def test_write_deadline_aborts_a_client_that_does_not_read(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})

    h = harness(app, timeout_write=1)
    h.transport.high_water = 1000
    h.feed(GET)
    h.run()
    assert h.proto.timer == T_WRITE and len(h.transport.data) < 2000  # bounded: the app waits
    h.expire()
    assert h.transport.aborted
    h.run()
    assert not h.state.tasks  # the app got ClientDisconnected and ended


# --------------------------------------------------------------------------------- app contract


def test_no_response_gives_500(harness: Any, caplog: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    h = harness(app)
    with caplog.at_level(logging.ERROR, logger="tricorn.error"):
        out = h.request(GET)
    assert out.startswith(b"HTTP/1.1 500 ") and b"connection: close" in out
    assert "without starting a response" in caplog.text


def test_exception_before_response_gives_500_and_is_logged(harness: Any, caplog: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ZeroDivisionError("boom")

    h = harness(app)
    with caplog.at_level(logging.ERROR, logger="tricorn.error"):
        out = h.request(GET)
    assert out.startswith(b"HTTP/1.1 500 ") and b"boom" not in out
    assert "Exception in ASGI application" in caplog.text and "ZeroDivisionError" in caplog.text


def test_exception_after_partial_response_closes(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("late")

    h = harness(app)
    out = h.request(GET)
    h.run()
    assert out.startswith(b"HTTP/1.1 200 ") and not out.endswith(b"0\r\n\r\n")
    assert h.transport.closed


def test_start_without_body_gives_500(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    assert harness(app).request(GET).startswith(b"HTTP/1.1 500 ")


def test_non_none_return_is_logged(harness: Any, caplog: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> Any:
        await hello(scope, receive, send)
        return 42

    with caplog.at_level(logging.ERROR, logger="tricorn.error"):
        out = harness(app).request(GET)
    assert out.startswith(b"HTTP/1.1 200 ") and "returned a value" in caplog.text


@pytest.mark.parametrize("messages, problem", [
    ([{"type": "http.response.body", "body": b"x"}], "must follow"),
    ([{"type": "http.response.start", "status": 200}] * 2, "sent twice"),
    ([{"type": "http.response.start", "status": "200"}], "int status"),
    ([{"type": "http.response.start", "status": 99}], "int status"),
    ([{"type": "http.response.start", "status": 200},
      {"type": "http.response.body", "body": "text"}], "must be bytes"),
    ([{"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb: c")]},
      {"type": "http.response.body", "body": b""}], "CR, LF or NUL"),
    ([{"type": "http.response.start", "status": 200, "headers": [(b"bad name", b"v")]},
      {"type": "http.response.body", "body": b""}], "invalid header name"),
    ([{"type": "http.response.start", "status": 200, "headers": [("x", "v")]},
      {"type": "http.response.body", "body": b""}], "invalid response"),
    ([{"type": "websocket.accept"}], "unexpected ASGI message type"),
])
def test_contract_violations_raise_and_give_500(harness: Any, messages: list[Any],
                                                problem: str) -> None:
    errors: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            for message in messages:
                await send(message)
        except ASGIProtocolError as exc:
            errors.append(exc)
            raise

    out = harness(app).request(GET)
    assert out.startswith(b"HTTP/1.1 500 ") and b"\r\nb: c" not in out
    assert errors and problem in str(errors[0])


def test_send_after_disconnect_raises_client_disconnected_quietly(harness: Any,
                                                                  caplog: Any) -> None:
    outcome: list[object] = []
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        started.set()
        outcome.append(await receive())  # waits: the body is read, the response is not done
        try:
            await send({"type": "http.response.body", "body": b"b", "more_body": True})
        except OSError as exc:
            outcome.append(exc)
            raise

    h = harness(app)
    h.feed(GET)
    h.run()
    with caplog.at_level(logging.DEBUG, logger="tricorn.error"):
        h.proto.connection_lost(None)
        h.run()
    assert outcome[0] == {"type": "http.disconnect"}
    assert isinstance(outcome[1], ClientDisconnected) and isinstance(outcome[1], OSError)
    assert "Exception in ASGI application" not in caplog.text
    assert not h.state.tasks and not h.state.connections


def test_messages_after_the_response_are_ignored(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await hello(scope, receive, send)
        await send({"type": "http.response.body", "body": b"extra"})

    h = harness(app)
    out = h.request(GET)
    assert out.endswith(b"Hello, world!") and b"extra" not in out


def test_disconnect_wakes_a_waiting_receive(harness: Any) -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())

    h = harness(app)
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    h.run()
    h.proto.connection_lost(None)
    h.run()
    assert got == [{"type": "http.request", "body": b"ab", "more_body": True},
                   {"type": "http.disconnect"}]


def test_eof_when_idle_closes(harness: Any) -> None:
    h = harness(hello)
    assert h.proto.eof_received() is False
    h.request(GET)
    assert h.proto.eof_received() is False


def test_half_closed_client_still_gets_its_answers(harness: Any) -> None:
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/wait":
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    h = harness(app)
    h.feed(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    h.run()
    assert h.proto.eof_received() is True
    gate.set()
    h.run()
    assert [r[2] for r in responses(h.transport.take())] == [b"/wait", b"/b"]
    assert h.transport.closed


def test_eof_wakes_a_receive_waiting_for_disconnect_but_send_delivers(harness: Any) -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())  # a long poll: waits for the disconnect
        await hello(scope, receive, send)

    h = harness(app)
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
    h.run()
    assert len(got) == 1
    assert h.proto.eof_received() is True
    h.run()
    assert got == [{"type": "http.request", "body": b"ok", "more_body": False},
                   {"type": "http.disconnect"}]
    assert h.transport.take().endswith(b"Hello, world!") and h.transport.closed


def test_eof_inside_a_body_is_a_disconnect(harness: Any) -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())

    h = harness(app)
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
    h.run()
    h.proto.eof_received()
    h.run()
    assert got[1] == {"type": "http.disconnect"} and h.transport.closed


def test_eof_inside_a_head_is_a_400(harness: Any) -> None:
    h = harness(hello)
    h.feed(b"GET / HTTP/1.1\r\nHost")
    h.proto.eof_received()
    assert h.transport.take().startswith(b"HTTP/1.1 400 ")


# ---------------------------------------------------------------------------------- extensions


def test_trailers(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")],
                    "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum2", b"2")]})

    h = harness(app)
    out = h.request(GET)
    assert out.endswith(b"4\r\ndata\r\n0\r\nx-sum: 1\r\nx-sum2: 2\r\n\r\n")
    assert not h.transport.closed and h.proto.timer == T_KEEPALIVE


def test_trailers_not_sent_leave_a_complete_body(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})

    h = harness(app)
    assert h.request(GET).endswith(b"4\r\ndata\r\n0\r\n\r\n")


def test_early_hints(harness: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style"]})
        await hello(scope, receive, send)

    out = harness(app).request(GET)
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; "
                          b"as=style\r\n\r\nHTTP/1.1 200 OK\r\n")
    out10 = harness(app).request(b"GET / HTTP/1.0\r\n\r\n")
    assert out10.startswith(b"HTTP/1.1 200 OK")  # no 1xx for an HTTP/1.0 client


def test_pathsend_through_the_copy_path(harness: Any, tmp_path: Any) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789" * 1000)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"999")]})
        await send({"type": "http.response.pathsend", "path": str(path)})

    h = harness(app)  # the fake transport has no socket: copied through the transport
    status, headers, body, rest = parse_response(h.request(GET))
    assert headers["content-length"] == "10000" and body == path.read_bytes() and rest == b""
    assert h.proto.timer == T_KEEPALIVE


# ----------------------------------------------------------------------------------------- limits


def test_limit_concurrency_answers_503(harness: Any) -> None:
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await gate.wait()
        await hello(scope, receive, send)

    from asgi_support import FakeTransport

    h = harness(app, limit_concurrency=1)
    h.feed(GET)
    h.run()
    t2 = FakeTransport()
    p2 = h.new_connection(t2)
    h.feed(GET, p2)
    h.run()
    assert t2.take().startswith(b"HTTP/1.1 503 ")
    gate.set()
    h.run()
    assert h.transport.take().startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("raw, status", [
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
])
def test_parser_limits_and_errors(harness: Any, raw: bytes, status: int) -> None:
    h = harness(hello)
    out = h.request(raw)
    assert out.startswith(b"HTTP/1.1 %d " % status) and b"connection: close" in out
    assert h.transport.eof_written and h.proto.lingering and h.state.total_requests == 0


@pytest.mark.parametrize("limit, raw, status", [
    ({"max_head_size": 200},
     b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 100 + b"\r\n" * 1
     + b"X-B: " + b"b" * 100 + b"\r\n\r\n", 431),
    ({"max_chunk_line": 16},
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 40
     + b"\r\nx\r\n0\r\n\r\n", 400),
    ({"max_chunk_ext": 20},
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"1;e=12345678\r\nx\r\n" * 4 + b"0\r\n\r\n", 400),
])
def test_head_and_chunk_limits(harness: Any, limit: dict[str, int], raw: bytes,
                               status: int) -> None:
    from tricorn.core.limits import ParserLimits

    h = harness(echo, limits=ParserLimits(**limit))  # type: ignore[arg-type]
    out = h.request(raw)
    assert responses(out)[-1][0] == status and h.proto.lingering


def test_body_size_limit(harness: Any) -> None:
    from tricorn.core.limits import ParserLimits

    h = harness(echo, limits=ParserLimits(max_body_size=10))
    assert h.request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n").startswith(
        b"HTTP/1.1 413 ")


def test_chunked_body_over_the_limit_mid_request(harness: Any) -> None:
    from tricorn.core.limits import ParserLimits

    h = harness(echo, limits=ParserLimits(max_body_size=10))
    out = h.request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")


def test_max_requests_calls_the_hook_once(harness: Any) -> None:
    calls: list[int] = []
    h = harness(hello, max_requests=2)
    h.state.on_max_requests = lambda: calls.append(h.state.total_requests)
    for _ in range(3):
        h.request(GET)
    assert calls == [2]


def test_shutdown_owes_a_fresh_connection_its_first_response(harness: Any) -> None:
    from asgi_support import FakeTransport

    h = harness(hello, keep_alive=2)
    served = FakeTransport()
    p_served = h.new_connection(served)
    h.feed(GET, p_served)
    h.run()
    served.take()
    silent = FakeTransport()
    p_silent = h.new_connection(silent)
    h.state.shutting_down = True
    for proto in (h.proto, p_served, p_silent):
        proto.shutdown()
    h.run()
    assert served.closed  # idle keep-alive: at once
    assert not h.transport.closed and not silent.closed  # fresh: owed a response
    assert h.proto.timer == T_HEAD and h.proto.deadline <= h.loop.time() + 2
    out = h.request(GET)  # its first request arrives: served, with close
    assert out.startswith(b"HTTP/1.1 200 ") and b"connection: close" in out
    h.run()
    assert h.transport.closed
    h.expire(p_silent)  # the silent one goes at its (shortened) deadline
    assert silent.closed and silent.data == b""


def test_shutdown_closes_idle_and_finishes_busy(harness: Any) -> None:
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await gate.wait()
        await hello(scope, receive, send)

    from asgi_support import FakeTransport

    h = harness(app)
    h.feed(GET)
    h.run()
    idle = FakeTransport()
    p_idle = h.new_connection(idle)
    p_idle.fresh = False  # it has served a request before: an idle keep-alive connection
    h.state.shutting_down = True
    for proto in list(h.state.connections):
        proto.shutdown()
    h.run()
    assert idle.closed and not h.transport.closed
    gate.set()
    h.run()
    out = h.transport.take()
    assert out.startswith(b"HTTP/1.1 200 ") and b"connection: close" in out
    assert h.transport.closed


# --------------------------------------------------------------------------------------- upgrade


def test_upgrade_handler_hand_off_and_decline(harness: Any) -> None:
    taken: list[Any] = []

    def handler(proto: Any, request: Any) -> bool:
        if request.target == b"/decline":
            return False
        taken.append((proto.conn.request.target, proto.client))
        proto.transport.write(proto.conn.send_informational(
            101, [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]))
        taken.append(proto.conn.trailing_data())
        proto.detach()
        return True

    h = harness(hello, upgrades={b"websocket": handler})
    h.feed(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
           b"\x81\x00")
    h.run()
    assert taken == [(b"/ws", ("127.0.0.1", 40000)), b"\x81\x00"]
    assert h.transport.take().startswith(b"HTTP/1.1 101 ")
    assert h.proto not in h.state.connections and h.proto.timer == T_NONE
    h2 = harness(hello, upgrades={b"websocket": handler})
    out = h2.request(b"GET /decline HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ")
    h3 = harness(hello)  # no handler (--ws none): plain HTTP
    assert h3.request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                      ).startswith(b"HTTP/1.1 200 ")
