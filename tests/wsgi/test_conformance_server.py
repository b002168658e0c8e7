"""The external request corpora, run through the real server (raw bytes in, canary records out).

The corpora (gunicorn's request corpus, llhttp's request tests, HTTP Garden's server bugs) are
loaded by tests/conformance/harness.py (from TRICORN_CONFORMANCE_DIR, default
../shared/conformance next to the repository); without them the tests skip, unless CI is set.
tests/conformance checks the parser's verdicts case by case; here the question is what the
*server* does with the same bytes on a real socket, one test per case and worker kind:

- the requests the canary app sees are exactly `harness.dispatched`: the ones the sans-I/O
  `Connection` (with the server's limits) reads completely before an error or a close, cut before
  the first request this server answers itself (differential oracle);
- every case the corpus calls invalid never reaches the app beyond the requests before the bad
  part, and the server answers it with a 4xx/5xx (or just closes) and stays alive.

Server policy, the only thing this file adds: the gunicorn cases run with the settings their
corpus entry names (limit_request_field_size, header_map, forwarded_allow_ips...), given on the
command line, and the oracle's limits come from the same settings (`parser_limits`); a request with
an underscore in a field name is refused under ``header_map = refuse``, and one with malformed
proxy headers when every peer is trusted. Cases that need a setting tricorn does not have (PROXY
protocol, casefold_http_method) are not generated.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tricorn_conformance_harness as harness  # loaded by tests/conftest.py
from tricorn.core.events import F_UNDERSCORE_NAME, Request
from tricorn.core.limits import ParserLimits
from tricorn.core.proxy import ProxyHeaderError, TrustedPeers, resolve
from tricorn.core.settings import REGISTRY, parser_limits
from tricorn.wsgi import settings as _wsgi_settings  # noqa: F401  (registers header_map...)
from wsgi_support import HERE, ServerProcess, start_server

harness.skip_module_without_corpus()

UNSUPPORTED = {"proxy_protocol", "casefold_http_method"}
"""Gunicorn settings of the corpus that tricorn-wsgi does not have: those cases are not run."""

Seen = list[tuple[str, str, bytes]]  # (method, raw URI, body) of each request the app got


def server_args(case: Any) -> tuple[str, ...] | None:
    """The case's settings as tricorn-wsgi command-line arguments; None if one is unsupported."""
    config = harness.server_config(case)
    if set(config) & UNSUPPORTED:
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


CASES = [(case, args) for case in harness.load_all()
         if (args := server_args(case)) is not None]


def _policy(args: tuple[str, ...]) -> tuple[ParserLimits, Callable[[Request], bool]]:
    """The parser limits the server gets from `args`, and which requests it hands to the app."""
    cfg = REGISTRY.load("wsgi", [*args, "tricorn_test_apps:canary"], environ={}, cwd=str(HERE))
    refuse_underscore = cfg["header_map"] == "refuse"
    trust_all = "*" in cfg["forwarded_allow_ips"]  # type: ignore[operator]

    def accept(req: Request) -> bool:
        if refuse_underscore and req.flags & F_UNDERSCORE_NAME:
            return False
        if trust_all:
            try:
                resolve(req.headers, "127.0.0.1", TrustedPeers(["*"]))
            except ProxyHeaderError:
                return False
        return True

    return parser_limits(cfg), accept


POLICIES = {args: _policy(args) for args in {args for _, args in CASES}}


def oracle(case: Any, args: tuple[str, ...]) -> Seen:
    """What a correct server hands to the app for these bytes (then the client's half-close)."""
    limits, accept = POLICIES[args]
    return [(m.request.method.decode("latin-1"), m.request.target.decode("latin-1"),
             bytes(m.body)) for m in harness.dispatched(case, limits, accept)]


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


def send_case(srv: ServerProcess, case: Any) -> tuple[Seen, bytes]:
    """Send the case's segments, half-close, read to the end; what the app saw and the answer."""
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


def _params() -> list[Any]:
    params = []
    for threads in ("1", "2"):
        for case, args in CASES:
            if threads == "1" and len(case.segments) > 1:
                continue  # the sync worker does not wait for a later segment (no keep-alive)
            params.append(pytest.param(threads, case, args, id=f"threads{threads}-{case.key}"))
    return params


def test_the_corpora_are_there() -> None:
    assert len(CASES) > 200
    assert {case.corpus for case, _ in CASES} == set(harness.CORPORA)


@pytest.mark.parametrize(("threads", "case", "args"), _params())
def test_case_through_server(servers: dict[tuple[str, ...], ServerProcess], threads: str,
                             case: Any, args: tuple[str, ...]) -> None:
    srv = server_for(servers, (*args, "--threads", threads))
    expected = oracle(case, args)
    seen, received = send_case(srv, case)
    failures: list[str] = []
    if threads == "1":  # no keep-alive: the app may see a prefix, and the server says 200 to it
        ok = seen == expected[:len(seen)] and (len(seen) == len(expected)
                                               or 200 in _statuses(received))
    else:
        ok = seen == expected
    if not ok:
        failures.append(f"app saw {seen!r}, expected {expected!r}")
    if harness.corpus_says_invalid(case):
        statuses = _statuses(received)
        final = [s for s in statuses if s >= 200]
        if len(seen) > len(expected) or (final and len(final) > len(seen)
                                         and not 400 <= final[len(seen)] < 600):
            failures.append(f"invalid case answered {statuses}")
    if not srv.alive():
        failures.append("the server died")
    assert not failures, f"{case.key}: " + "; ".join(failures)
