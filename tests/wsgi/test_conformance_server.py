"""The external request corpora, run through the real server (raw bytes in, canary records out).

The corpora (gunicorn's request corpus, llhttp's request tests, HTTP Garden's server bugs) live in
TRICORN_CONFORMANCE_DIR (default: ../shared/conformance next to the repository); without them the
tests skip, unless CI is set. tests/conformance checks the parser's verdicts case by case; here
the question is what the *server* does with the same bytes on a real socket:

- the requests the canary app sees are exactly the ones the sans-I/O `Connection` (with the same
  limits) reads completely before an error or a close: the server adds nothing, drops nothing,
  and never resynchronises after an error (differential oracle);
- every case the corpus calls invalid / error / reject never reaches the app beyond the requests
  before the bad part, and the server answers it with a 4xx (or just closes) and stays alive.

The gunicorn cases run with the settings their corpus entry names (limit_request_field_size,
header_map, ...), given on the command line; the oracle derives its parser limits from the same
settings (`parser_limits`). Cases that need a setting tricorn does not have (PROXY protocol,
casefold_http_method) are not applicable and skipped.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tricorn.core.connection import Connection
from tricorn.core.errors import ProtocolError
from tricorn.core.events import (
    F_AUTHORITY_FORM,
    F_UNDERSCORE_NAME,
    Data,
    EndOfMessage,
    Request,
)
from tricorn.core.limits import ParserLimits
from tricorn.core.proxy import ProxyHeaderError, TrustedPeers, resolve
from tricorn.core.settings import REGISTRY, parser_limits
from tricorn.wsgi import settings as _wsgi_settings  # noqa: F401  (registers header_map...)
from wsgi_support import HERE, ServerProcess, start_server

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("TRICORN_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance"))

if not CORPUS.is_dir():
    if os.environ.get("CI"):
        raise RuntimeError(f"conformance corpus not found at {CORPUS}")
    pytest.skip(f"conformance corpus not found at {CORPUS}", allow_module_level=True)


@dataclass(frozen=True)
class Case:
    name: str
    segments: tuple[bytes, ...]
    invalid: bool
    args: tuple[str, ...]


def _gunicorn_args(config: dict[str, Any]) -> tuple[str, ...] | None:
    if config.get("proxy_protocol") or config.get("casefold_http_method"):
        return None
    args: list[str] = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + flag[2:])
        else:
            args += [flag, str(value)]
    return tuple(args)


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for kind in ("valid", "invalid"):
        for meta_path in sorted((CORPUS / "gunicorn" / kind).glob("*.json")):
            meta = json.loads(meta_path.read_text())
            args = _gunicorn_args(meta.get("config", {}))
            if args is None:
                continue
            data = (meta_path.parent / meta["raw_file"]).read_bytes()
            cases.append(Case(f"gunicorn/{kind}/{meta_path.stem}", (data,), kind == "invalid",
                              args))
    for line in (CORPUS / "llhttp" / "requests.jsonl").read_text().splitlines():
        row = json.loads(line)
        cases.append(Case(f"llhttp/{row['id']}", (base64.b64decode(row["raw_b64"]),),
                          row["outcome"] == "error", ()))
    for line in (CORPUS / "http-garden" / "server_bugs.jsonl").read_text().splitlines():
        row = json.loads(line)
        segs = row.get("segments_b64") or [row["raw_b64"]]
        cases.append(Case(f"garden/{row['id']}", tuple(base64.b64decode(s) for s in segs),
                          row["expected"].startswith("reject"), ()))
    return cases


CASES = load_cases()


# ------------------------------------------------------------------------------------- oracle


def limits_for(args: tuple[str, ...]) -> tuple[ParserLimits, str, bool]:
    """The parser limits, header_map and trust-everyone flag the server gets from `args`."""
    cfg = REGISTRY.load("wsgi", [*args, "tricorn_test_apps:canary"], environ={}, cwd=str(HERE))
    trust_all = "*" in cfg["forwarded_allow_ips"]  # type: ignore[operator]
    return parser_limits(cfg), str(cfg["header_map"]), trust_all


LIMITS = {args: limits_for(args) for args in {case.args for case in CASES}}


def oracle(case: Case) -> list[tuple[str, str, bytes]]:
    """The requests a correct server hands to the app for these bytes (then EOF)."""
    limits, header_map, trust_all = LIMITS[case.args]
    conn = Connection(limits)
    for seg in case.segments:
        conn.receive_data(seg)
    conn.receive_data(b"")
    out: list[tuple[str, str, bytes]] = []
    while True:
        try:
            ev = conn.next_event()
        except ProtocolError:
            return out
        if not isinstance(ev, Request):
            return out
        if ev.flags & F_AUTHORITY_FORM:
            return out  # CONNECT: 405 without the app
        if header_map == "refuse" and ev.flags & F_UNDERSCORE_NAME:
            return out
        if trust_all:
            try:
                resolve(ev.headers, "127.0.0.1", TrustedPeers(["*"]))
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
                return out  # incomplete at end of input
        out.append((ev.method.decode("latin-1"), ev.target.decode("latin-1"), b"".join(body)))
        conn.send_full_response(200, [], b"ok")
        if not conn.keep_alive:
            return out
        conn.start_next_cycle()


# ------------------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[tuple[str, ...], ServerProcess]]:
    started: dict[tuple[str, ...], ServerProcess] = {}
    yield started
    for srv in started.values():
        srv.proc.kill()
        srv.proc.wait(5)


def server_for(servers: dict[tuple[str, ...], ServerProcess], args: tuple[str, ...]
               ) -> ServerProcess:
    srv = servers.get(args)
    if srv is None or not srv.alive():
        srv = start_server(*args, "--keep-alive", "2", app="tricorn_test_apps:canary")
        servers[args] = srv
    return srv


def run_case(srv: ServerProcess, case: Case) -> tuple[list[tuple[str, str, bytes]], bytes]:
    srv.clear_state("canary")
    received = b""
    with srv.connect(timeout=5) as s:
        for i, seg in enumerate(case.segments):
            if i:
                time.sleep(0.05)
            try:
                s.sendall(seg)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        s.settimeout(5)
        while True:
            try:
                more = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not more:
                break
            received += more
    records = [json.loads(line) for line in srv.state_lines("canary")]
    seen = [(r["method"], r["raw_uri"], base64.b64decode(r["body_b64"])) for r in records]
    return seen, received


def _statuses(data: bytes) -> list[int]:
    out = []
    for line in data.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit():
            out.append(int(line[9:12]))
    return out


@pytest.mark.parametrize("threads", ["1", "2"])
def test_corpus_through_server(servers: dict[tuple[str, ...], ServerProcess], threads: str
                               ) -> None:
    failures: list[str] = []
    invalid_dispatched = 0
    for case in CASES:
        if threads == "1" and len(case.segments) > 1:
            continue  # the sync worker does not wait for a later segment (no keep-alive)
        srv = server_for(servers, (*case.args, "--threads", threads))
        expected = oracle(case)
        seen, received = run_case(srv, case)
        if threads == "1":
            ok = seen == expected[:len(seen)] and (len(seen) == len(expected)
                                                   or 200 in _statuses(received))
        else:
            ok = seen == expected
        if not ok:
            failures.append(f"{case.name}: app saw {seen!r}, expected {expected!r}")
        if case.invalid:
            statuses = _statuses(received)
            final = [s for s in statuses if s >= 200]
            if len(seen) > len(expected) or (final and len(final) > len(seen)
                                             and not 400 <= final[len(seen)] < 600):
                invalid_dispatched += 1
                failures.append(f"{case.name}: invalid case answered {statuses}")
        if not srv.alive():
            failures.append(f"{case.name}: the server died")
    assert not failures, "\n".join(failures[:20])
    assert invalid_dispatched == 0
    assert len(CASES) > 200
