"""The lab app's two faces answer the same endpoints, and /io really calls the slow upstream."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from lab.apps import asgi_app, content, wsgi_app


def call_wsgi(path: str, method: str = "GET", body: bytes = b"", query: str = "") -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "lab",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SCRIPT_NAME": "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if method == "POST":
        environ["CONTENT_TYPE"] = "application/octet-stream"
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(s)
        return lambda data: None

    result = validator(wsgi_app.app)(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        result.close()
    return status[0], data


async def call_asgi(path: str, method: str = "GET", body: bytes = b"", query: str = "") -> tuple[int, bytes]:
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "query_string": query.encode(), "headers": []}
    await asgi_app.app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    "path, query, check",
    [
        ("/", "", lambda b: b == content.HELLO),
        ("/health", "", lambda b: b == b"ok\n"),
        ("/json", "", lambda b: json.loads(b)["count"] == 20),
        ("/download", "", lambda b: len(b) == 64 * 1024),
        ("/download", "size=1000", lambda b: len(b) == 1000),
        ("/cpu", "n=1000", lambda b: json.loads(b)["rounds"] == 1000),
    ],
)
def test_both_faces_answer_the_same(path: str, query: str, check: Any) -> None:
    status, body = call_wsgi(path, query=query)
    assert status.startswith("200") and check(body)
    code, abody = asyncio.run(call_asgi(path, query=query))
    assert code == 200 and check(abody)
    if path != "/json":
        assert abody == body


def test_upload_counts_and_checksums_the_body() -> None:
    body = os.urandom(1024 * 1024 + 17)
    expected = {"received": len(body), "crc32": zlib.crc32(body)}
    assert json.loads(call_wsgi("/upload", "POST", body)[1]) == expected
    assert json.loads(asyncio.run(call_asgi("/upload", "POST", body))[1]) == expected


def test_unknown_path_is_404_and_io_without_upstream_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    assert call_wsgi("/nope")[0].startswith("404")
    monkeypatch.delenv(content.UPSTREAM_ENV, raising=False)
    content.upstream_url.cache_clear()
    assert call_wsgi("/io")[0].startswith("503")
    assert asyncio.run(call_asgi("/io"))[0] == 503


def test_non_loopback_upstream_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(content.UPSTREAM_ENV, "http://10.0.0.1:80")
    content.upstream_url.cache_clear()
    try:
        assert content.upstream_url() is None
    finally:
        content.upstream_url.cache_clear()


def test_websocket_echo() -> None:
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asgi_app.app({"type": "websocket", "path": "/ws"}, receive, send))
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": "hi"},
        {"type": "websocket.send", "bytes": b"\x00\x01"},
    ]


def test_io_calls_the_slow_upstream(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = subprocess.Popen(
        [sys.executable, "-m", "lab.apps.upstream", "--delay-ms", "80"],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert upstream.stdout is not None
        line = upstream.stdout.readline().strip()
        assert line.startswith("LISTENING http://127.0.0.1:")
        monkeypatch.setenv(content.UPSTREAM_ENV, line.split(" ", 1)[1])
        content.upstream_url.cache_clear()
        started = time.monotonic()
        status, body = call_wsgi("/io")
        assert status.startswith("200") and json.loads(body) == {"upstream": "ok", "delay_ms": 80}
        assert time.monotonic() - started >= 0.08
        code, abody = asyncio.run(call_asgi("/io", query="ms=5"))
        assert code == 200 and json.loads(abody)["delay_ms"] == 5
    finally:
        content.upstream_url.cache_clear()
        upstream.terminate()
        assert upstream.wait(timeout=10) == 0
