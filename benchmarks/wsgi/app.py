"""The WSGI application every server in benchmarks/wsgi/bench.py runs (the same file for all).

GET /       -> "Hello, World!" (13 bytes)
GET /64k    -> 64 KiB of bytes
POST /echo  -> the request body (read with its Content-Length)
GET /pid    -> the pid of the serving process (benchmarks/arbiter/run.py: respawn latency)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

HELLO = b"Hello, World!"
BIG = b"x" * 65536
_TEXT = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_BIG = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/64k":
        start_response("200 OK", _BIG)
        return [BIG]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/pid":
        pid = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(pid)))])
        return [pid]
    start_response("200 OK", _TEXT)
    return [HELLO]
