"""The external request corpora (gunicorn's request corpus, llhttp's request tests, HTTP Garden's
server bugs) through the real ASGI server on a loopback socket.

The corpora live in TRICORN_CONFORMANCE_DIR (default: ../shared/conformance next to the
repository); without them the test skips, unless CI is set. The oracle is the sans-I/O
`Connection` with the same limits: the requests a canary application sees must be exactly those it
reads completely before an error or the end of input (the server adds nothing, drops nothing,
never resynchronises after an error), and every case a corpus calls invalid is answered with a
4xx (or a close) without reaching the application past the requests before the bad part.

Cases needing a setting tricorn-asgi does not have (PROXY protocol, casefold_http_method,
header_map) are not applicable here. The client sends each case, half-closes, and reads to the end.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgi_support import ServerThread
from tricorn.asgi.cycle import split_target
from tricorn.asgi.settings import REGISTRY
from tricorn.core.connection import Connection
from tricorn.core.errors import ProtocolError
from tricorn.core.events import F_AUTHORITY_FORM, Data, EndOfMessage, Request
from tricorn.core.proxy import ProxyHeaderError, TrustedPeers, resolve
from tricorn.core.settings import parser_limits

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("TRICORN_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance"))

if not CORPUS.is_dir():
    if os.environ.get("CI"):
        raise RuntimeError(f"conformance corpus not found at {CORPUS}")
    pytest.skip(f"conformance corpus not found at {CORPUS}", allow_module_level=True)

SUPPORTED = {"limit_request_line", "limit_request_fields", "limit_request_field_size",
             "permit_obsolete_folding", "permit_unconventional_http_method",
             "forwarded_allow_ips"}


@dataclass(frozen=True)
class Case:
    name: str
    segments: tuple[bytes, ...]
    invalid: bool
    settings: tuple[tuple[str, Any], ...]


def _settings(config: dict[str, Any]) -> tuple[tuple[str, Any], ...] | None:
    if set(config) - SUPPORTED:
        return None
    out = dict(config)
    # gunicorn counts the CRLF of a field line in limit_request_field_size; tricorn does not
    size = out.get("limit_request_field_size", 8190) or 8190
    out["limit_request_field_size"] = size - 2
    return tuple(sorted(out.items()))


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for kind in ("valid", "invalid"):
        for meta_path in sorted((CORPUS / "gunicorn" / kind).glob("*.json")):
            meta = json.loads(meta_path.read_text())
            settings = _settings(meta.get("config", {}))
            if settings is None:
                continue
            data = (meta_path.parent / meta["raw_file"]).read_bytes()
            cases.append(Case(f"gunicorn/{kind}/{meta_path.stem}", (data,), kind == "invalid",
                              settings))
    default = _settings({})
    assert default is not None
    for line in (CORPUS / "llhttp" / "requests.jsonl").read_text().splitlines():
        row = json.loads(line)
        cases.append(Case(f"llhttp/{row['id']}", (base64.b64decode(row["raw_b64"]),),
                          row["outcome"] == "error", default))
    for line in (CORPUS / "http-garden" / "server_bugs.jsonl").read_text().splitlines():
        row = json.loads(line)
        segs = row.get("segments_b64") or [row["raw_b64"]]
        cases.append(Case(f"garden/{row['id']}", tuple(base64.b64decode(s) for s in segs),
                          row["expected"].startswith("reject"), default))
    return cases


def oracle(case: Case) -> list[tuple[str, bytes, bytes, bytes]]:
    """(method, raw path, query, body) of each request a correct server hands to the app."""
    opts = dict(case.settings)
    limits = parser_limits(REGISTRY.make("asgi", opts, environ={}))
    trust_all = opts.get("forwarded_allow_ips") == "*"
    conn = Connection(limits)
    for seg in case.segments:
        conn.receive_data(seg)
    conn.receive_data(b"")
    out: list[tuple[str, bytes, bytes, bytes]] = []
    while True:
        try:
            ev = conn.next_event()
        except ProtocolError:
            return out
        if not isinstance(ev, Request) or ev.flags & F_AUTHORITY_FORM:
            return out
        try:
            resolve(ev.headers, "127.0.0.1", TrustedPeers(["*"] if trust_all else ["127.0.0.1"]))
        except ProxyHeaderError:
            return out
        body = []
        while True:
            try:
                part = conn.next_event()
            except ProtocolError:
                return out
            if isinstance(part, Data):
                body.append(part.data)
            elif isinstance(part, EndOfMessage):
                break
            else:
                return out
        raw_path, query = split_target(ev.target, ev.flags)
        out.append((ev.method.decode("latin-1"), raw_path, query, b"".join(body)))
        conn.send_full_response(200, [], b"ok")
        if not conn.keep_alive:
            return out
        conn.start_next_cycle()


def _statuses(data: bytes) -> list[int]:
    return [int(line[9:12]) for line in data.split(b"\r\n")
            if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit()]


def test_corpus_through_the_server() -> None:
    cases = load_cases()
    assert len(cases) > 200
    seen: list[tuple[str, bytes, bytes, bytes]] = []

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

    servers: dict[tuple[tuple[str, Any], ...], ServerThread] = {}
    failures: list[str] = []
    try:
        for case in cases:
            srv = servers.get(case.settings)
            if srv is None:
                srv = servers[case.settings] = ServerThread(
                    canary, loop="uvloop", keep_alive=2, timeout_linger=0.2,
                    **dict(case.settings)).start()
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
            expected = oracle(case)
            if seen != expected:
                failures.append(f"{case.name}: app saw {seen!r}, expected {expected!r}")
            if case.invalid:
                final = [s for s in _statuses(received) if s >= 200]
                if len(final) > len(seen) and not 400 <= final[len(seen)] < 600:
                    failures.append(f"{case.name}: invalid case answered {final}")
            if not srv.thread.is_alive():
                failures.append(f"{case.name}: the server stopped")
    finally:
        for srv in servers.values():
            srv.stop()
    assert not failures, "\n".join(failures[:20])
