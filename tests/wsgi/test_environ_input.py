"""PEP 3333 environ and wsgi.input, through the real server (sync and gthread), over loopback."""

from __future__ import annotations

import base64
import json
import socket
import time

import httpx
import pytest
from wsgi_support import ServerProcess, get, one_response, parse_responses, raw, start_server

REQUIRED = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
    "SERVER_PROTOCOL", "wsgi.version", "wsgi.url_scheme", "wsgi.multithread",
    "wsgi.multiprocess", "wsgi.run_once",
)


def env_of(server: ServerProcess, request: bytes) -> dict[str, object]:
    resp = one_response(raw(server, request))
    assert resp.status == 200, resp
    return json.loads(resp.body)  # type: ignore[no-any-return]


def test_required_keys_and_types(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/environ?a=1&b=%20x", headers={"X-Thing": "v"})
    assert r.status_code == 200
    env = r.json()
    for key in REQUIRED:
        assert key in env, key
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=1&b=%20x"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.run_once"] is False
    assert env["wsgi.multithread"] is ("--threads" in server.args)
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(server.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
    assert env["HTTP_X_THING"] == "v"
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert env["SCRIPT_NAME"] == ""
    assert env["RAW_URI"] == "/environ?a=1&b=%20x"
    assert env["has_input"] and env["has_errors"] and env["has_file_wrapper"]
    assert env["wsgi.input_terminated"] is True


def test_path_is_percent_decoded_as_latin1(server: ServerProcess) -> None:
    env = env_of(server, get(path="/environ/a%20b/%C3%A9/%2F?q=%C3%A9#frag"))
    assert env["PATH_INFO"] == "/environ/a b/\xc3\xa9//"
    assert env["QUERY_STRING"] == "q=%C3%A9"
    assert env["RAW_URI"] == "/environ/a%20b/%C3%A9/%2F?q=%C3%A9#frag"


def test_headers_mapping(server: ServerProcess) -> None:
    req = (b"POST /environ HTTP/1.1\r\nHost: h\r\nContent-Type: text/x\r\nContent-Length: 2\r\n"
           b"Accept: a\r\nAccept: b\r\nCookie: c=1\r\nCookie: d=2\r\nX_Under: dropped\r\n"
           b"X-Under: kept\r\nConnection: keep-alive\r\nX-Empty:\r\nX-Latin: \xe9t\xe9\r\n\r\nhi")
    env = env_of(server, req)
    assert env["CONTENT_TYPE"] == "text/x" and env["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_COOKIE"] == "c=1; d=2"
    assert env["HTTP_X_UNDER"] == "kept"  # the underscore spelling was dropped
    assert env["HTTP_X_EMPTY"] == ""
    assert env["HTTP_X_LATIN"] == "\xe9t\xe9"


def test_http10_and_absolute_form(server: ServerProcess) -> None:
    env = env_of(server, b"GET /environ HTTP/1.0\r\n\r\n")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0" and "HTTP_HOST" not in env
    env = env_of(server, b"GET http://example.org:8080/environ?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert env["HTTP_HOST"] == "example.org:8080"
    assert env["SERVER_NAME"] == "example.org" and env["SERVER_PORT"] == "8080"
    assert env["PATH_INFO"] == "/environ" and env["QUERY_STRING"] == "x=1"


def test_options_asterisk(server: ServerProcess) -> None:
    resp = one_response(raw(server, b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert resp.status == 404  # the app saw PATH_INFO "*" and does not route it


def test_connect_is_refused_without_the_app(server: ServerProcess) -> None:
    resp = one_response(raw(server, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org\r\n\r\n"))
    assert resp.status == 405 and resp.header("connection") == "close"


# ---------------------------------------------------------------------------------- wsgi.input

BODY = b"line one\nline two\n\nlast line without newline"


@pytest.mark.parametrize("mode,n", [("all", ""), ("n", "7"), ("n", "1"), ("n", "1000"),
                                    ("line", "-1"), ("line", "4"), ("iter", ""), ("lines", "")])
@pytest.mark.parametrize("chunked", [False, True])
def test_input_modes(server: ServerProcess, mode: str, n: str, chunked: bool) -> None:
    if chunked:
        pieces = [BODY[i:i + 5] for i in range(0, len(BODY), 5)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        framing = b"Transfer-Encoding: chunked\r\n"
    else:
        body = BODY
        framing = b"Content-Length: %d\r\n" % len(BODY)
    req = (b"POST /read?mode=%s&n=%s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (mode.encode(), n.encode(),
                                                                        framing)) + body
    # send in small pieces so reads cross recv() boundaries
    resp = one_response(raw(server, [req[i:i + 17] for i in range(0, len(req), 17)], pause=0.001))
    assert resp.status == 200
    out = json.loads(resp.body)
    parts = [base64.b64decode(p) for p in out["parts"]]
    assert b"".join(parts) == BODY
    assert out["after"] == ""  # never more than the body
    if mode == "line" and n == "-1":
        assert parts == [b"line one\n", b"line two\n", b"\n", b"last line without newline"]
    if mode == "line" and n == "4":
        assert all(len(p) <= 4 for p in parts)
    if mode == "n":
        size = int(n)
        assert all(len(p) == size for p in parts[:-1])


def test_input_stops_at_body_end_pipelined(server: ServerProcess) -> None:
    req = (b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
           b"GET /pid HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    responses, _ = parse_responses(raw(server, req, expect=2))
    assert [r.status for r in responses] == [200, 200]
    assert responses[0].body == b"hello"
    assert b"pid" in responses[1].body


def test_100_continue_sent_on_first_read(server: ServerProcess) -> None:
    with server.connect() as s:
        s.sendall(b"POST /expect?read=1 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 4\r\n\r\n")
        s.settimeout(3)
        got = s.recv(1000)
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"body")
        resp = one_response(s.recv(10000))
        assert resp.status == 200 and json.loads(resp.body) == {"length": 4}


def test_100_continue_not_sent_when_app_does_not_read(server: ServerProcess) -> None:
    with server.connect() as s:
        s.sendall(b"POST /expect HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 4\r\n\r\n")
        s.settimeout(3)
        data = s.recv(10000)
        assert not data.startswith(b"HTTP/1.1 100")
        resp = one_response(data)
        assert resp.status == 401 and resp.header("connection") == "close"


def test_100_continue_ignored_for_http10(server: ServerProcess) -> None:
    data = raw(server, b"POST /expect?read=1 HTTP/1.0\r\nExpect: 100-continue\r\n"
                       b"Content-Length: 4\r\n\r\nbody")
    assert not data.startswith(b"HTTP/1.1 100") and one_response(data).status == 200


def test_unknown_expectation_is_417(server: ServerProcess) -> None:
    resp = one_response(raw(server, b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n"
                                    b"Content-Length: 1\r\n\r\nx"))
    assert resp.status == 417


def test_truncated_body_is_not_complete(server: ServerProcess) -> None:
    """P11: a chunked body cut short never reaches the app as complete."""
    with server.connect() as s:
        s.sendall(b"POST /hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n")
        s.shutdown(socket.SHUT_WR)
        s.settimeout(3)
        data = s.recv(10000)
    assert b"2cf24dba" not in data  # sha256("hello") never computed as a complete body


def test_validator_wrapped_app(server_factory) -> None:  # type: ignore[no-untyped-def]
    for threads in ("1", "3"):
        srv = server_factory("--threads", threads, app="tricorn_test_apps:validated")
        with httpx.Client(base_url=srv.url) as c:
            for path in ("/", "/stream?n=4", "/write", "/no-content", "/environ"):
                r = c.get(path)
                assert r.status_code in (200, 204), (path, r.text)
            r = c.post("/hash", content=b"abc" * 1000)
            assert r.json()["length"] == 3000
            r = c.post("/read?mode=line", content=BODY)
            assert r.status_code == 200
            r = c.post("/read?mode=n&n=3", content=BODY)
            assert r.status_code == 200
            r = c.head("/")
            assert r.status_code == 200 and r.content == b""
        time.sleep(0.2)
        log = srv.log()
        assert "AssertionError" not in log and "Traceback" not in log, log
        assert "garbage collected without being closed" not in log


def test_root_path(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory("--root-path", "/mount")
    env = httpx.get(f"{srv.url}/mount/environ").json()
    assert env["SCRIPT_NAME"] == "/mount" and env["PATH_INFO"] == "/environ"
    env = httpx.get(f"{srv.url}/mountain/environ")
    assert env.status_code == 404  # "/mountain" is not under "/mount"


def test_header_map_refuse_and_dangerous(server_factory) -> None:  # type: ignore[no-untyped-def]
    req = b"GET /environ HTTP/1.1\r\nHost: h\r\nX_Under: 1\r\nConnection: close\r\n\r\n"
    srv = server_factory("--header-map", "refuse")
    resp = one_response(raw(srv, req))
    assert resp.status == 400
    srv = server_factory("--header-map", "dangerous", "--threads", "2")
    env = json.loads(one_response(raw(srv, req)).body)
    assert env["HTTP_X_UNDER"] == "1"


def test_unix_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.sock"
    srv = start_server(bind=f"unix:{path}")
    try:
        env = json.loads(one_response(raw(srv, get(path="/environ", extra="Connection: close\r\n")
                                          )).body)
        assert env["REMOTE_ADDR"] == "" and env["SERVER_NAME"] == "localhost"
        assert srv.stop() == 0
        assert not path.exists()  # the socket file is removed on exit
    finally:
        if srv.alive():
            srv.proc.kill()
