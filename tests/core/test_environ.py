"""tricorn.core.environ: the PEP 3333 mapping (`wsgi_environ` and `EnvironBuilder`)."""

from __future__ import annotations

import io
import sys

import pytest
from tricorn.core.environ import EnvironBuilder, ProxyHeaderError, header_key, wsgi_environ
from tricorn.core.events import F_ABSOLUTE_FORM, F_ASTERISK_FORM, F_UNDERSCORE_NAME, Request
from tricorn.core.proxy import TrustedPeers


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


def _request(target: bytes, headers: list[tuple[bytes, bytes]], flags: int = 0,
             method: bytes = b"GET") -> Request:
    if any(b"_" in name for name, _ in headers):
        flags |= F_UNDERSCORE_NAME
    return Request(method, target, "1.1", headers, flags, 0)


def test_builder_layers_and_headers() -> None:
    builder = EnvironBuilder(root_path="/app/", multithread=True, file_wrapper=io.BytesIO)
    assert builder.base["SCRIPT_NAME"] == "/app" and builder.base["wsgi.input_terminated"]
    assert builder.base["wsgi.file_wrapper"] is io.BytesIO and builder.base["wsgi.multithread"]
    info = builder.for_connection(("10.0.0.1", 5000), ("127.0.0.1", 8000), tls=True)
    env = builder.build(info, _request(b"/app/a%20b?x=%20#frag", [
        (b"host", b"h"), (b"content-type", b"text/plain"), (b"x-a", b"1"), (b"x-a", b"2"),
        (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x_spoof", b"no")], method=b"PURGE"))
    assert env["REQUEST_METHOD"] == "PURGE" and env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/a b" and env["QUERY_STRING"] == "x=%20"
    assert env["RAW_URI"] == "/app/a%20b?x=%20#frag" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == "8000"
    assert env["REMOTE_ADDR"] == "10.0.0.1" and env["REMOTE_PORT"] == "5000"
    assert env["wsgi.url_scheme"] == "https" and env["CONTENT_TYPE"] == "text/plain"
    assert env["HTTP_X_A"] == "1, 2" and env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_SPOOF" not in env and "wsgi.input" not in env
    assert builder.build(info, _request(b"/application", []))["PATH_INFO"] == "/application"
    assert builder.build(info, _request(b"/app", []))["PATH_INFO"] == ""
    kept = EnvironBuilder(header_map="dangerous").build(info, _request(b"/", [(b"x_y", b"1")]))
    assert kept["HTTP_X_Y"] == "1"


def test_builder_unix_socket_and_target_forms() -> None:
    builder = EnvironBuilder()
    info = builder.for_connection("", "/tmp/s.sock", tls=False)
    assert info.base["SERVER_NAME"] == "localhost" and info.base["SERVER_PORT"] == "80"
    assert info.base["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in info.base
    env = builder.build(info, _request(b"http://u@example.com:8080?q=1", [(b"host", b"other")],
                                       F_ABSOLUTE_FORM))
    assert env["HTTP_HOST"] == "example.com:8080" and env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "8080" and env["PATH_INFO"] == "/"
    assert env["QUERY_STRING"] == "q=1" and env["RAW_URI"] == "http://u@example.com:8080?q=1"
    v6 = builder.build(info, _request(b"https://[::1]/x", [], F_ABSOLUTE_FORM))
    assert (v6["SERVER_NAME"], v6["SERVER_PORT"], v6["PATH_INFO"]) == ("[::1]", "80", "/x")
    star = builder.build(info, _request(b"*", [], F_ASTERISK_FORM, method=b"OPTIONS"))
    assert star["PATH_INFO"] == "*" and star["QUERY_STRING"] == ""


def test_builder_proxy_headers_only_from_trusted_peers() -> None:
    builder = EnvironBuilder(trusted_peers=TrustedPeers(["127.0.0.1"]))
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https"),
               (b"x-forwarded-host", b"public.example")]
    trusted = builder.for_connection(("127.0.0.1", 1), ("127.0.0.1", 80), tls=False)
    assert trusted.trusted
    env = builder.build(trusted, _request(b"/", headers))
    assert env["REMOTE_ADDR"] == "203.0.113.9" and "REMOTE_PORT" not in env
    assert env["wsgi.url_scheme"] == "https" and env["HTTP_HOST"] == "public.example"
    stranger = builder.for_connection(("10.9.9.9", 1), ("127.0.0.1", 80), tls=False)
    env = builder.build(stranger, _request(b"/", headers))
    assert env["REMOTE_ADDR"] == "10.9.9.9" and env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
    with pytest.raises(ProxyHeaderError):
        builder.build(trusted, _request(b"/", [(b"x-forwarded-proto", b"https"),
                                               (b"x-forwarded-ssl", b"off")]))
