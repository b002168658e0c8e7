"""``--status-bind``: ``/livez``, ``/readyz`` and ``/metrics``, served by the master's loop.

HTTP/1.0-style: one ``GET`` per connection, ``Connection: close``. `/livez` is 200 while the
master's loop runs (it is the loop answering); `/readyz` is 200 when the wanted number of workers
of the current configuration are ready and the master is not stopping, else 503; `/metrics` is
`tricorn.arbiter.metrics.render_metrics`.

Invariants: inherited from `tricorn.arbiter.service.LoopServer` (bounded connections, bounded
request size, a deadline per connection, never blocks the loop); the listener is bound before any
worker is forked and closed in every worker.
"""

from __future__ import annotations

import json
import selectors
from typing import TYPE_CHECKING

from tricorn.core.settings import parse_bind
from tricorn.core.sockets import listen

from .metrics import render_metrics
from .service import LoopServer

if TYPE_CHECKING:
    from .arbiter import Arbiter

__all__ = ["StatusServer"]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


def _response(status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> bytes:
    payload = body.encode("utf-8")
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n"
            "Cache-Control: no-store\r\n\r\n")
    return head.encode("ascii") + payload


class StatusServer(LoopServer):
    def __init__(self, arbiter: Arbiter, bind: str, selector: selectors.BaseSelector) -> None:
        self.arbiter = arbiter
        self.listener = listen(parse_bind(bind), backlog=64)
        super().__init__(self.listener.sock, selector, arbiter.log)
        arbiter.log.info("Status at: %s (/livez /readyz /metrics)", self.listener.url())

    def complete(self, data: bytes) -> bool:
        return b"\r\n\r\n" in data or b"\n\n" in data

    def error_response(self, message: str) -> bytes:
        return _response(400, message + "\n")

    def respond(self, data: bytes) -> bytes:
        line = data.split(b"\n", 1)[0].decode("latin-1").strip()
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _response(400, "bad request\n")
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _response(405, "method not allowed\n")
        arbiter = self.arbiter
        if target == "/livez":
            result = _response(200, "ok\n")
        elif target == "/readyz":
            ready, wanted = arbiter.ready_workers(), arbiter.num_workers
            body = json.dumps({"ready": arbiter.is_ready(), "workers_ready": ready,
                               "workers_wanted": wanted, "stopping": arbiter.stopping}) + "\n"
            result = _response(200 if arbiter.is_ready() else 503, body, "application/json")
        elif target == "/metrics":
            result = _response(200, render_metrics(arbiter), "text/plain; version=0.0.4")
        else:
            result = _response(404, "not found\n")
        if method == "HEAD":
            result = result.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        return result
