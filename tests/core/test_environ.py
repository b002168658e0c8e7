"""tricorn.core.environ: the minimal PEP 3333 mapping."""

from __future__ import annotations

import io
import sys

from tricorn.core.environ import header_key, wsgi_environ


def test_environ_keys() -> None:
    body = io.BytesIO(b"")
    env = wsgi_environ(
        method="POST", script_name="/app", raw_path=b"/app/a%20b/c", query_string=b"x=%20",
        http_version="1.1",
        headers=[(b"host", b"h"), (b"content-type", b"text/plain"), (b"content-length", b"0"),
                 (b"x-a", b"1"), (b"x-a", b"2"), (b"cookie", b"a=1"), (b"cookie", b"b=2"),
                 (b"x_spoof", b"no")],
        server=("127.0.0.1", 8000), client=("10.0.0.1", 5000), scheme="https",
        wsgi_input=body, wsgi_errors=sys.stderr,
    )
    assert env["REQUEST_METHOD"] == "POST" and env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/a b/c" and env["QUERY_STRING"] == "x=%20"
    assert env["RAW_URI"] == "/app/a%20b/c?x=%20"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == "8000"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "10.0.0.1" and env["REMOTE_PORT"] == "5000"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "0"
    assert env["HTTP_X_A"] == "1, 2" and env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_SPOOF" not in env
    assert env["wsgi.version"] == (1, 0) and env["wsgi.url_scheme"] == "https"
    assert env["wsgi.input"] is body and env["wsgi.run_once"] is False
    assert header_key(b"user-agent") == "HTTP_USER_AGENT"


def test_unix_socket_and_latin1_path() -> None:
    env = wsgi_environ(
        method="GET", script_name="", raw_path=b"/caf%C3%A9", query_string=b"",
        http_version="1.0", headers=[], server=("/tmp/s.sock", None), client=None,
        scheme="http", wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr,
    )
    assert env["PATH_INFO"] == "/caf\xc3\xa9"  # bytes as latin-1 (PEP 3333)
    assert env["SERVER_PORT"] == "" and env["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in env
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
