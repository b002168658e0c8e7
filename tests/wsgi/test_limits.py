"""Every limit, through the real server: the right 4xx, a clean close, the app never called."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from wsgi_support import ServerProcess, get, is_closed, one_response, raw, rss_kib, start_server

LIMITS = (
    "--limit-request-line", "200",
    "--limit-request-fields", "10",
    "--limit-request-field-size", "300",
    "--limit-request-head", "2000",
    "--limit-request-body", "1000",
    "--limit-chunk-line", "64",
    "--limit-chunk-ext", "128",
)


@pytest.fixture(scope="module", params=["1", "3"])
def limited(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(*LIMITS, "--threads", request.param, app="tricorn_test_apps:canary")
    yield srv
    srv.proc.kill()
    srv.proc.wait(5)


def refused(srv: ServerProcess, data: bytes | list[bytes], status: int) -> None:
    srv.clear_state("canary")
    with srv.connect() as s:
        for piece in data if isinstance(data, list) else [data]:
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        s.settimeout(3)
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                more = s.recv(65536)
                if not more:
                    break
                got += more
        except ConnectionResetError:
            pass
        resp = one_response(got)
        assert resp.status == status, got[:200]
        assert resp.header("connection") == "close"
        assert is_closed(s, 3)
    time.sleep(0.05)
    assert srv.state_lines("canary") == []


def test_request_line(limited: ServerProcess) -> None:
    refused(limited, get(path="/" + "a" * 300), 414)
    assert one_response(raw(limited, get(path="/" + "a" * 150))).status == 200


def test_field_count(limited: ServerProcess) -> None:
    extra = "".join(f"X-{i}: v\r\n" for i in range(12))
    refused(limited, get(extra=extra), 431)


def test_field_size(limited: ServerProcess) -> None:
    refused(limited, get(extra="X-Big: " + "v" * 400 + "\r\n"), 431)


def test_head_size(limited: ServerProcess) -> None:
    extra = "".join(f"X-{i}: {'v' * 250}\r\n" for i in range(9))
    refused(limited, get(extra=extra), 431)


def test_body_content_length(limited: ServerProcess) -> None:
    refused(limited, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001,
            413)
    resp = one_response(raw(limited, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"
                                     + b"x" * 1000))
    assert resp.status == 200


def test_body_chunked(limited: ServerProcess) -> None:
    body = b"".join(b"64\r\n" + b"x" * 100 + b"\r\n" for _ in range(11)) + b"0\r\n\r\n"
    data = raw(limited, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
               expect=None)
    assert one_response(data).status == 413


def test_chunk_line_and_extensions(limited: ServerProcess) -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = raw(limited, head + b"1;" + b"a" * 100 + b"\r\nx\r\n0\r\n\r\n", expect=None)
    assert one_response(data).status == 400
    ext = b"".join(b"1;e=" + b"v" * 40 + b"\r\nx\r\n" for _ in range(5))
    data = raw(limited, head + ext + b"0\r\n\r\n", expect=None)
    assert one_response(data).status == 400


def test_huge_request_line_and_header_bounded(limited: ServerProcess) -> None:
    """P21/P22: megabytes of head: 414/431 quickly, RSS flat, the response readable."""
    before = rss_kib(limited.proc.pid)
    start = time.monotonic()
    refused(limited, [b"GET /", b"a" * (1 << 20)], 414)
    refused(limited, [b"GET / HTTP/1.1\r\nHost: a\r\nX: ", b"v" * (1 << 20)], 431)
    refused(limited, [b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 10000], 431)
    assert time.monotonic() - start < 5
    assert rss_kib(limited.proc.pid) - before < 8 * 1024


def test_chunk_extension_flood(limited: ServerProcess) -> None:
    """P9: an endless chunk extension is refused after the limit, not buffered."""
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;"
    data = raw(limited, [head] + [b"a" * 65536] * 16, expect=None)
    assert one_response(data).status == 400


def test_garbage_and_tls_to_plaintext(limited: ServerProcess) -> None:
    """P38: a TLS hello or random bytes to the plaintext port: 400 and close, no crash."""
    refused(limited, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4
            + b"\r\n\r\n", 400)
    with limited.connect() as s:
        s.sendall(bytes((i * 97 + 13) % 256 for i in range(65536)))
        assert is_closed(s, 3)
    assert limited.alive()
    assert one_response(raw(limited, get())).status == 200
