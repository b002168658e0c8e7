"""Responses: start_response/exc_info, write(), close(), HEAD, framing, app errors, file_wrapper."""

from __future__ import annotations

import json

import httpx
import pytest
from wsgi_support import ServerProcess, get, is_closed, one_response, parse_responses, raw

CLOSE = "Connection: close\r\n"


def pid_of(server: ServerProcess) -> int:
    return int(json.loads(one_response(raw(server, get(path="/pid", extra=CLOSE))).body)["pid"])


def test_hello_and_framing(server: ServerProcess) -> None:
    resp = one_response(raw(server, get(extra=CLOSE)))
    assert resp.status == 200 and resp.body == b"hello world\n"
    assert resp.header("content-length") == "12"
    assert resp.header("server") == "tricorn" and resp.header("date")
    assert resp.header("connection") == "close"


def test_streamed_body_is_chunked_and_closed(server: ServerProcess) -> None:
    server.clear_state("closed")
    resp = one_response(raw(server, get(path="/stream?n=3&tag=s1", extra=CLOSE)))
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.body == b"part0\npart1\npart2\n"
    assert "s1" in server.wait_state("closed")


def test_streamed_body_http10_is_close_delimited(server: ServerProcess) -> None:
    data = raw(server, b"GET /stream?n=2 HTTP/1.0\r\n\r\n", expect=None)
    resp = one_response(data)
    assert resp.header("transfer-encoding") is None and resp.header("connection") == "close"
    assert resp.body == b"part0\npart1\n"


def test_write_callable(server: ServerProcess) -> None:
    resp = one_response(raw(server, get(path="/write", extra=CLOSE)))
    assert resp.body == b"written;returned"


def test_head_has_no_body(server: ServerProcess) -> None:
    server.clear_state("closed")
    data = raw(server, b"HEAD /stream?n=3&tag=h1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
               expect=None)
    assert data.endswith(b"\r\n\r\n") and b"part0" not in data
    assert "h1" in server.wait_state("closed")
    data = raw(server, b"HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", expect=None)
    resp = one_response(data, head_request=True)
    assert resp.header("content-length") == "12" and data.endswith(b"\r\n\r\n")


def test_no_content(server: ServerProcess) -> None:
    data = raw(server, get(path="/no-content", extra=CLOSE), expect=None)
    resp = one_response(data)
    assert resp.status == 204 and resp.header("content-length") is None
    assert data.endswith(b"\r\n\r\n")


def test_exc_info_replaces_status_before_head(server: ServerProcess) -> None:
    resp = one_response(raw(server, get(path="/exc-info", extra=CLOSE)))
    assert resp.status == 503 and resp.body == b"replaced\n"


def test_exc_info_after_head_closes_connection(server: ServerProcess) -> None:
    data = raw(server, get(path="/exc-info-late"), expect=None)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"never" not in data and not data.endswith(b"0\r\n\r\n")  # cut short, then closed
    assert "too late" in server.log()


def test_app_error_gives_500_and_worker_lives(server: ServerProcess) -> None:
    before = pid_of(server)
    resp = one_response(raw(server, get(path="/error")))
    assert resp.status == 500 and b"Traceback" not in resp.body
    assert "the app failed on purpose" in server.log() and "Traceback" in server.log()
    assert pid_of(server) == before


def test_app_error_after_head_closes_and_calls_close(server: ServerProcess) -> None:
    server.clear_state("closed")
    with server.connect() as s:
        s.sendall(get(path="/error-late"))
        assert is_closed(s, 3)
    assert "error-late" in server.wait_state("closed")
    assert pid_of(server) > 0


@pytest.mark.parametrize("path", [
    "/hop?name=Transfer-Encoding&value=chunked", "/hop?name=Keep-Alive&value=5",
    "/hop?name=Upgrade&value=h2c", "/hop?name=Connection&value=keep-alive", "/inject", "/bad-name",
])
def test_refused_response_headers(server: ServerProcess, path: str) -> None:
    """P35: hop-by-hop or injected headers give a 500, nothing injected, worker alive."""
    before = pid_of(server)
    data = raw(server, get(path=path, extra=CLOSE))
    resp = one_response(data)
    assert resp.status == 500
    assert b"Set-Cookie" not in data and b"nope" not in data
    assert pid_of(server) == before


def test_connection_close_from_app_is_honoured(server: ServerProcess) -> None:
    data = raw(server, get(path="/conn-close") + get(), expect=None)
    responses, _ = parse_responses(data)
    assert len(responses) == 1 and responses[0].header("connection") == "close"


def test_content_length_longer_body_is_cut(server: ServerProcess) -> None:
    data = raw(server, get(path="/cl?declared=5&actual=9"), expect=None)
    resp = one_response(data)
    assert resp.header("content-length") == "5" and resp.body == b"yyyyy"
    assert data.endswith(b"yyyyy")  # nothing beyond the declared length, then closed


def test_content_length_shorter_body_closes(server: ServerProcess) -> None:
    with server.connect() as s:
        s.sendall(get(path="/cl?declared=9&actual=5"))
        assert is_closed(s, 3)


def test_errors_stream(server: ServerProcess) -> None:
    resp = one_response(raw(server, get(path="/errors", extra=CLOSE)))
    assert resp.status == 200
    assert "message to wsgi.errors" in server.log()


@pytest.mark.parametrize("query", ["size=300000", "size=300000&offset=1000",
                                   "size=300000&declared=1000", "size=1000&declared=5000"])
def test_file_wrapper(server: ServerProcess, query: str) -> None:
    q = dict(p.split("=") for p in query.split("&"))
    size, offset = int(q["size"]), int(q.get("offset", "0"))
    expected = (bytes(range(256)) * (size // 256) + b"z" * (size % 256))[offset:]
    if "declared" in q:
        declared = int(q["declared"])
        if declared > len(expected):  # the file is shorter than declared: cut, then closed
            data = raw(server, get(path=f"/file?{query}"), expect=None, timeout=2)
            assert data.endswith(expected)
            return
        expected = expected[:declared]
    r = httpx.get(f"{server.url}/file?{query}")
    assert r.status_code == 200 and r.content == expected
    assert r.headers["content-length"] == str(len(expected))


def test_file_wrapper_without_sendfile(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory("--no-sendfile")
    r = httpx.get(f"{srv.url}/file?size=70000&offset=3")
    assert r.content == (bytes(range(256)) * (70000 // 256) + b"z" * (70000 % 256))[3:]
