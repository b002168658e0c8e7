"""The lab app's WSGI face (`lab.apps.wsgi_app:app`), PEP 3333.

The /io endpoint uses one `httpx.Client` per process (created lazily, re-created after a fork, shared
by threads: httpx's pool is thread-safe), so sync and threaded workers call the upstream the way a
real WSGI app would.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from lab.apps import content

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]

_counter = itertools.count()
_client_lock = threading.Lock()
_client: Any = None
_client_pid = -1
READ_CHUNK = 64 * 1024


def _respond(
    start_response: StartResponse, status: str, body: bytes, content_type: str = "application/json"
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _http_client() -> Any:
    """This process's httpx client (imported lazily: only /io needs httpx)."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            import httpx

            _client = httpx.Client(
                timeout=30.0, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
            )
            _client_pid = os.getpid()
        return _client


def _read_body(environ: dict[str, Any]) -> tuple[int, int]:
    """Read the whole request body in chunks; return (length, crc32)."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    length = 0
    crc = 0
    if remaining > 0:
        while remaining > 0:
            chunk = stream.read(min(READ_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            length += len(chunk)
            crc = content.crc_update(crc, chunk)
    elif environ.get("wsgi.input_terminated"):
        while chunk := stream.read(READ_CHUNK):
            length += len(chunk)
            crc = content.crc_update(crc, chunk)
    return length, crc


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Dispatch on PATH_INFO to the endpoints described in `lab.apps`."""
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")
    query = environ.get("QUERY_STRING", "")
    if path == "/":
        return _respond(start_response, "200 OK", content.HELLO, "text/plain")
    if path == "/health":
        return _respond(start_response, "200 OK", b"ok\n", "text/plain")
    if path == "/json":
        return _respond(start_response, "200 OK", content.json_body(next(_counter)))
    if path == "/download":
        size = content.query_int(query, "size", content.DOWNLOAD_DEFAULT, 0, content.DOWNLOAD_MAX)
        return _respond(start_response, "200 OK", content.download_body(size), "application/octet-stream")
    if path == "/upload" and method == "POST":
        length, crc = _read_body(environ)
        return _respond(start_response, "200 OK", content.upload_answer(length, crc))
    if path == "/cpu":
        rounds = content.query_int(query, "n", content.CPU_DEFAULT_ROUNDS, 0, content.CPU_MAX_ROUNDS)
        return _respond(start_response, "200 OK", content.cpu_body(rounds))
    if path == "/io":
        target = content.upstream_target(query)
        if target is None:
            return _respond(start_response, "503 Service Unavailable", content.NO_UPSTREAM)
        upstream = _http_client().get(target)
        status = "200 OK" if upstream.status_code == 200 else "502 Bad Gateway"
        return _respond(start_response, status, upstream.content)
    return _respond(start_response, "404 Not Found", content.NOT_FOUND, "text/plain")
