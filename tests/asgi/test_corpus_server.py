"""The external request corpora (gunicorn's request corpus, llhttp's request tests, HTTP Garden's
server bugs) through the real ASGI server on a loopback socket, one test per case.

The corpora are loaded by tests/conformance/harness.py (from TRICORN_CONFORMANCE_DIR, default
../shared/conformance next to the repository); without them the tests skip, unless CI is set. The
oracle is `harness.dispatched`: the requests a canary application sees must be exactly those the
sans-I/O `Connection` with the server's limits reads completely before an error or the end of
input (the server adds nothing, drops nothing, never resynchronises after an error), and every
case a corpus calls invalid is answered with a 4xx/5xx (or a close) without reaching the
application past the requests before the bad part. The client sends each case, half-closes, and
reads to the end.

Server policy, the only thing this file adds: a gunicorn case runs with the settings its corpus
entry names when tricorn-asgi has them all (cases needing PROXY protocol, casefold_http_method or
header_map are not generated); proxy headers are on, so a request whose Forwarded / X-Forwarded-*
fields do not resolve (from 127.0.0.1, trusted by default, or from anyone with
``forwarded_allow_ips = "*"``) is answered by the server, not the application.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tricorn_conformance_harness as harness  # loaded by tests/conftest.py
from asgi_support import ServerThread
from tricorn.asgi.cycle import split_target
from tricorn.asgi.settings import REGISTRY
from tricorn.core.events import Request
from tricorn.core.proxy import ProxyHeaderError, TrustedPeers, resolve
from tricorn.core.settings import parser_limits

harness.skip_module_without_corpus()

SUPPORTED = {"limit_request_line", "limit_request_fields", "limit_request_field_size",
             "permit_obsolete_folding", "permit_unconventional_http_method",
             "forwarded_allow_ips"}
"""Gunicorn settings of the corpus that tricorn-asgi has (same names, same meaning)."""

Settings = tuple[tuple[str, Any], ...]
Seen = list[tuple[str, bytes, bytes, bytes]]  # (method, raw path, query, body) per request


def server_settings(case: Any) -> Settings | None:
    """The case's settings for the server; None when one is not a tricorn-asgi setting."""
    config = harness.server_config(case)
    if set(config) - SUPPORTED:
        return None
    return tuple(sorted(config.items()))


CASES = [(case, settings) for case in harness.load_all()
         if (settings := server_settings(case)) is not None]


def oracle(case: Any, settings: Settings) -> Seen:
    """(method, raw path, query, body) of each request a correct server hands to the app."""
    opts = dict(settings)
    limits = parser_limits(REGISTRY.make("asgi", opts, environ={}))
    trusted = TrustedPeers(["*"] if opts.get("forwarded_allow_ips") == "*" else ["127.0.0.1"])

    def accept(req: Request) -> bool:
        try:
            resolve(req.headers, "127.0.0.1", trusted)
        except ProxyHeaderError:
            return False
        return True

    out: Seen = []
    for m in harness.dispatched(case, limits, accept):
        raw_path, query = split_target(m.request.target, m.request.flags)
        out.append((m.request.method.decode("latin-1"), raw_path, query, bytes(m.body)))
    return out


def _statuses(data: bytes) -> list[int]:
    return [int(line[9:12]) for line in data.split(b"\r\n")
            if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit()]


@pytest.fixture(scope="module")
def canary_servers() -> Iterator[tuple[Seen, Callable[[Settings], ServerThread]]]:
    """What the canary application saw, and a server (started on first use) per settings."""
    seen: Seen = []

    async def canary(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append((scope["method"], scope["raw_path"], scope["query_string"], bytes(body)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    servers: dict[Settings, ServerThread] = {}

    def server_for(settings: Settings) -> ServerThread:
        srv = servers.get(settings)
        if srv is None:
            srv = servers[settings] = ServerThread(
                canary, loop="uvloop", keep_alive=2, timeout_linger=0.2, **dict(settings)).start()
        return srv

    try:
        yield seen, server_for
    finally:
        for srv in servers.values():
            srv.stop()


def test_the_corpora_are_there() -> None:
    assert len(CASES) > 200
    assert {case.corpus for case, _ in CASES} == set(harness.CORPORA)


@pytest.mark.parametrize(("case", "settings"),
                         [pytest.param(case, settings, id=case.key) for case, settings in CASES])
def test_case_through_the_server(canary_servers: tuple[Seen, Callable[[Settings], ServerThread]],
                                 case: Any, settings: Settings) -> None:
    seen, server_for = canary_servers
    srv = server_for(settings)
    seen.clear()
    received = b""
    with socket.create_connection(srv.address, timeout=5) as sock:
        for i, seg in enumerate(case.segments):
            if i:
                time.sleep(0.02)
            try:
                sock.sendall(seg)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while True:
            try:
                more = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not more:
                break
            received += more
    expected = oracle(case, settings)
    failures: list[str] = []
    if seen != expected:
        failures.append(f"app saw {seen!r}, expected {expected!r}")
    if harness.corpus_says_invalid(case):
        final = [s for s in _statuses(received) if s >= 200]
        if len(final) > len(seen) and not 400 <= final[len(seen)] < 600:
            failures.append(f"invalid case answered {final}")
    if not srv.thread.is_alive():
        failures.append("the server stopped")
    assert not failures, f"{case.key}: " + "; ".join(failures)
