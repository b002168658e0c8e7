"""Run the external conformance corpora through tricorn's real HTTP/1.1 stack, and judge the results.

Used by the tests in this folder (through the `h` fixture of conftest.py) and by `report.py`, which
renders docs/conformance.md from the same functions, so the test run and the document can never
disagree about what a case means.

The corpora ($TRICORN_CONFORMANCE_DIR, default <repo>/../shared/conformance, described in its
README.md) are data files written by other projects. Each case is driven through a
`tricorn.core.connection.Connection` the way a server drives it (`drive`): feed the bytes (HTTP
Garden segments one by one), collect each request with its body and trailers, answer it with a
small response, and `start_next_cycle()` while the connection persists.
The run stops at a `ProtocolError`, a non-persistent connection, an upgrade (the server answers 101)
or a CONNECT (the server opens the tunnel after the request's framing), or when the input is used up.
EOF is fed afterwards where the corpus says the client closes (gunicorn: always, it parses a finite
stream; llhttp: `calls_finish_at_eof`; HTTP Garden: only to check that an incomplete payload is not
taken as complete).

Every case is then judged by exactly one rule (`classify`):
- `as corpus`: the corpus' own expectation must hold;
- `deviation`: our behaviour differs on purpose; `deviations.DEVIATIONS` says exactly what we do (a
  small outcome language, `check_outcome`) and why, and that is what is asserted;
- `not applicable`: the case needs a server setting that does not exist at the parser level
  (`deviations.NOT_APPLICABLE`); what can be checked of it is still checked (`check_not_applicable`).
Nothing is skipped silently: the only skip is the whole corpus folder being absent outside CI.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tricorn.core.connection import Connection
from tricorn.core.errors import ProtocolError
from tricorn.core.events import (
    F_AUTHORITY_FORM,
    F_CHUNKED,
    F_CONN_CLOSE,
    F_CONN_KEEP_ALIVE,
    F_LENGTH,
    F_UNDERSCORE_NAME,
    F_UPGRADE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)
from tricorn.core.limits import ParserLimits
from tricorn.core.settings import max_field_size

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
DEFAULT_CORPUS_DIR = REPO_ROOT.parent / "shared" / "conformance"
ENV_VAR = "TRICORN_CONFORMANCE_DIR"

CORPORA = ("gunicorn", "llhttp", "http-garden")
# (corpus, kind) pairs; each has its own parametrized test, so every pass count is visible
KINDS = (("gunicorn", "valid"), ("gunicorn", "invalid"), ("llhttp", "strict"),
         ("llhttp", "lenient"), ("http-garden", "server-bugs"))


def _load_deviations() -> Any:
    """deviations.py, loaded by path (the tests run with --import-mode=importlib, no packages)."""
    name = "tricorn_conformance_deviations"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "deviations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


deviations = _load_deviations()
DEVIATIONS: dict[str, tuple[str, str]] = deviations.DEVIATIONS
NOT_APPLICABLE: dict[str, str] = deviations.NOT_APPLICABLE


class Mismatch(AssertionError):
    """Our behaviour does not match what the case (or its deviation entry) expects."""


def expect(cond: object, message: str) -> None:
    if not cond:
        raise Mismatch(message)


# ---------------------------------------------------------------------------------- the corpus


def corpus_dir() -> Path:
    """The corpus folder: $TRICORN_CONFORMANCE_DIR (a relative path is taken from the repository
    root, like the default), else <repo>/../shared/conformance. It may not exist."""
    env = os.environ.get(ENV_VAR)
    path = Path(env) if env else DEFAULT_CORPUS_DIR
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def corpus_missing_reason() -> str | None:
    """None when the corpus folder is usable, else why not."""
    path = corpus_dir()
    if not path.is_dir():
        return f"conformance corpus folder {path} is absent (set {ENV_VAR})"
    for sub in ("gunicorn/valid", "gunicorn/invalid", "llhttp/requests.jsonl",
                "http-garden/server_bugs.jsonl"):
        if not (path / sub).exists():
            return f"conformance corpus folder {path} has no {sub}"
    return None


def skip_module_without_corpus() -> None:
    """For a test module that runs the corpora through a server: skip the whole module when the
    corpus folder is missing, except in CI (``$CI`` set), where that is an error."""
    import pytest  # noqa: PLC0415  (the harness itself does not need pytest)

    reason = corpus_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)


@dataclass(frozen=True)
class Case:
    corpus: str  # "gunicorn", "llhttp", "http-garden"
    kind: str  # gunicorn: valid/invalid; llhttp: strict/lenient; http-garden: server-bugs
    id: str  # unique within the corpus; DEVIATIONS keys are f"{corpus}/{id}"
    name: str
    segments: tuple[bytes, ...]  # what the client sends, in separate writes
    eof: bool  # the client closes after sending
    data: dict[str, Any] = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.corpus}/{self.id}"

    @property
    def raw(self) -> bytes:
        return b"".join(self.segments)

    @property
    def test_id(self) -> str:
        if self.corpus != "llhttp":
            return self.id
        slug = re.sub(r"[^A-Za-z0-9.-]+", "-", self.name.replace("`", "")).strip("-")
        return f"{self.id}-{slug[:70]}"


def load_gunicorn(root: Path) -> list[Case]:
    cases = []
    for kind in ("valid", "invalid"):
        for path in sorted((root / "gunicorn" / kind).glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            raw = (path.parent / data["raw_file"]).read_bytes()
            cases.append(Case("gunicorn", kind, f"{kind}/{path.stem}", f"{kind}/{path.stem}",
                              (raw,), True, data))
    return cases


def load_llhttp(root: Path) -> list[Case]:
    cases = []
    with open(root / "llhttp" / "requests.jsonl", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            data = json.loads(line)
            raw = base64.b64decode(data["raw_b64"])
            cases.append(Case("llhttp", data["mode"], data["id"], data["name"], (raw,),
                              bool(data.get("calls_finish_at_eof")), data))
    return cases


def load_http_garden(root: Path) -> list[Case]:
    cases = []
    with open(root / "http-garden" / "server_bugs.jsonl", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            data = json.loads(line)
            if data.get("segments_b64"):
                segments = tuple(base64.b64decode(s) for s in data["segments_b64"])
            else:
                segments = (base64.b64decode(data["raw_b64"]),)
            cases.append(Case("http-garden", "server-bugs", data["id"], data["bug"], segments,
                              False, data))
    return cases


_LOADERS: dict[str, Callable[[Path], list[Case]]] = {
    "gunicorn": load_gunicorn, "llhttp": load_llhttp, "http-garden": load_http_garden,
}


def load(corpus: str, root: Path | None = None) -> list[Case]:
    return _LOADERS[corpus](root or corpus_dir())


def load_all(root: Path | None = None) -> list[Case]:
    return [case for corpus in CORPORA for case in load(corpus, root)]


def check_integrity(case: Case) -> None:
    """The bytes are the ones the corpus describes (length and SHA-256 where recorded)."""
    raw = case.raw
    if "raw_len" in case.data:
        expect(len(raw) == case.data["raw_len"], f"raw length {len(raw)} != {case.data['raw_len']}")
    if "raw_sha256" in case.data:
        digest = hashlib.sha256(raw).hexdigest()
        expect(digest == case.data["raw_sha256"], "raw bytes do not match raw_sha256")


# ---------------------------------------------------------------------------------- driving


@dataclass
class Message:
    request: Request
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    complete: bool = False


@dataclass
class Run:
    """What a server saw on one connection."""

    messages: list[Message] = field(default_factory=list)
    error: ProtocolError | None = None
    end: str = "need_data"  # error | close | eof | need_data | upgrade | tunnel
    closed_complete: bool | None = None  # ConnectionClosed.complete, with end == "eof"
    tail: bytes | None = None  # the bytes after an upgraded / CONNECT request: not HTTP
    responses: list[bytes] = field(default_factory=list)

    @property
    def completed(self) -> list[Message]:
        return [m for m in self.messages if m.complete]

    @property
    def incomplete_at_eof(self) -> bool:
        """The client closed inside a request (a body or a head): never a complete request."""
        if self.end == "eof":
            return self.closed_complete is False
        return self.error is not None and self.error.reason == "incomplete_request"

    def describe(self) -> str:
        parts = []
        for m in self.messages:
            r = m.request
            parts.append(f"{r.method.decode('latin-1')} {r.target.decode('latin-1')!r} "
                         f"HTTP/{r.http_version} body={bytes(m.body)[:40]!r}"
                         f"{'' if m.complete else ' (incomplete)'}")
        end = self.end
        if self.error is not None:
            end = f"error {self.error.status} {self.error.reason}"
        elif self.end == "eof":
            end = f"eof (complete={self.closed_complete})"
        return f"[{'; '.join(parts)}] then {end}"


def limits_for(**options: Any) -> ParserLimits:
    return ParserLimits(**options)


def drive(segments: Iterable[bytes], limits: ParserLimits, eof: bool, *,
          upgrades: bool = True) -> Run:
    """Drive one Connection like a server: every request is read to its end, then answered (101 for
    an upgrade, nothing for CONNECT, whose tunnel starts after the request's framing, else 200).
    With ``upgrades=False`` an upgrade request is answered 200 like any other and the connection
    goes on as HTTP/1.1 (what a server does when its application does not take the upgrade)."""
    conn = Connection(limits)
    run = Run()

    def pump() -> bool:
        while True:
            try:
                ev = conn.next_event()
            except ProtocolError as e:
                run.error = e
                run.end = "error"
                return False
            if ev is NEED_DATA:
                run.end = "need_data"
                return True
            if isinstance(ev, Request):
                run.messages.append(Message(ev))
            elif isinstance(ev, Data):
                run.messages[-1].body += ev.data
            elif isinstance(ev, EndOfMessage):
                msg = run.messages[-1]
                msg.complete = True
                msg.trailers = list(ev.trailers)
                req = msg.request
                if req.flags & F_AUTHORITY_FORM:
                    run.tail = conn.trailing_data()
                    run.end = "tunnel"
                    return False
                upgrade = req.upgrade
                if upgrade is not None and upgrades:
                    run.responses.append(conn.send_informational(
                        101, [(b"connection", b"upgrade"), (b"upgrade", upgrade)]))
                    run.tail = conn.trailing_data()
                    run.end = "upgrade"
                    return False
                run.responses.append(
                    conn.send_full_response(200, [(b"content-type", b"text/plain")], b"ok"))
                if not conn.keep_alive:
                    run.end = "close"
                    return False
                conn.start_next_cycle()
            elif isinstance(ev, ConnectionClosed):
                run.end = "eof"
                run.closed_complete = ev.complete
                return False
            elif ev is PAUSED:  # cannot happen: every request is answered at its end
                raise Mismatch("the connection paused although the request was answered")

    for segment in segments:
        conn.receive_data(segment)
        if not pump():
            return run
    if eof:
        conn.receive_data(b"")
        pump()
    return run


def run_case(case: Case, **options: Any) -> Run:
    return drive(case.segments, case_limits(case, **options), case.eof)


# ---------------------------------------------------------------------------------- real servers
# tests/wsgi/test_conformance_server.py and tests/asgi/test_corpus_server.py send each case to a
# real server on a loopback socket, half-close, and compare what their canary application saw with
# `dispatched` (a differential oracle: the server adds nothing, drops nothing, and never
# resynchronises after an error). Only the server's own policy stays in those files: which
# settings it supports, how a case's settings reach it, and which requests it answers itself.


def corpus_says_invalid(case: Case) -> bool:
    """The corpus calls the bytes invalid: gunicorn's invalid/ folder, an llhttp case whose outcome
    is an error, an HTTP Garden case expected to be rejected."""
    if case.corpus == "gunicorn":
        return case.kind == "invalid"
    if case.corpus == "llhttp":
        return bool(case.data["outcome"] == "error")
    return str(case.data["expected"]).startswith("reject")


def server_config(case: Case) -> dict[str, Any]:
    """The server settings a case asks for: a gunicorn case's ``config`` (gunicorn's setting names
    and values, which tricorn's settings accept), nothing for the other corpora."""
    if case.corpus != "gunicorn":
        return {}
    return dict(case.data.get("config", {}))


def dispatched(case: Case, limits: ParserLimits,
               accept: Callable[[Request], bool] | None = None) -> list[Message]:
    """The requests a server whose parser has `limits` hands to its application when a client
    sends `case` (segment by segment) and then half-closes: the complete requests of the
    connection, in order, up to (not including) the first one the server answers itself — a
    CONNECT, or a request `accept` refuses (the server's policy: header names, proxy headers...).
    Nothing after a protocol error, a non-persistent response or an incomplete request. Upgrade
    requests are ordinary requests here (the application answers them; the connection goes on)."""
    run = drive(case.segments, limits, eof=True, upgrades=False)
    out: list[Message] = []
    for m in run.messages:
        req = m.request
        if not m.complete or req.flags & F_AUTHORITY_FORM or (accept is not None and not accept(req)):
            break
        out.append(m)
    return out


# ---------------------------------------------------------------------------------- limits


# gunicorn settings that exist at the parser level, and how they map onto ParserLimits.
GUNICORN_LIMITS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "limit_request_line": lambda v: {"max_request_line": min(int(v), 8190) if v else 8190},
    "limit_request_fields": lambda v: {"max_fields": min(int(v), 32768) if int(v) > 0 else 32768},
    "limit_request_field_size": lambda v: {"max_field_size": max_field_size(int(v))},
    "permit_obsolete_folding": lambda v: {"unfold": bool(v)},
    "permit_unconventional_http_method": lambda v: {"any_method": bool(v)},
}
# gunicorn settings that are a comparison policy here (how header names reach the application).
GUNICORN_POLICIES = {"header_map"}
GUNICORN_UNSUPPORTED = {"proxy_protocol", "forwarded_allow_ips", "casefold_http_method",
                        "secure_scheme_headers"}

# llhttp lenient flags whose leniency tricorn offers as an option (the only one: obs-fold).
LLHTTP_LENIENCY = {"headers": {"unfold": True}}


def case_limits(case: Case, **options: Any) -> ParserLimits:
    values: dict[str, Any] = {}
    if case.corpus == "gunicorn":
        for key, value in case.data.get("config", {}).items():
            if key in GUNICORN_LIMITS:
                values.update(GUNICORN_LIMITS[key](value))
    elif case.corpus == "llhttp":
        for flag in case.data.get("lenient_flags", []):
            values.update(LLHTTP_LENIENCY.get(flag, {}))
    values.update(options)
    return ParserLimits(**values)


def header_map(case: Case) -> str:
    return str(case.data.get("config", {}).get("header_map", "drop"))


# ---------------------------------------------------------------------------------- expectations


def _latin1(b: bytes) -> str:
    return b.decode("latin-1")


def _ows_collapse(v: str) -> str:
    return re.sub(r"[ \t]+", " ", v)


def check_gunicorn_valid(case: Case, run: Run) -> None:
    want = case.data["requests"]
    expect(run.error is None, f"expected {len(want)} valid request(s), got {run.describe()}")
    expect(run.end in ("eof", "close", "tunnel", "upgrade"),
           f"the connection should end cleanly after the requests: {run.describe()}")
    expect(run.end != "eof" or run.closed_complete, f"EOF inside a request: {run.describe()}")
    got = run.messages
    expect(len(got) == len(want) and all(m.complete for m in got),
           f"expected {len(want)} complete request(s), got {run.describe()}")
    policy = header_map(case)
    for i, (m, w) in enumerate(zip(got, want, strict=True)):
        r = m.request
        where = f"request {i}"
        expect(_latin1(r.method) == w["method"], f"{where}: method {r.method!r} != {w['method']!r}")
        expect(_latin1(r.target) == w["uri"]["raw"],
               f"{where}: target {r.target!r} != {w['uri']['raw']!r}")
        expect(r.http_version == "{}.{}".format(*w["version"]),
               f"{where}: version {r.http_version} != {w['version']}")
        # gunicorn's default header_map=drop silently drops names with "_" (a WSGI name-collision
        # policy, applied by our WSGI server from F_UNDERSCORE_NAME); the parser keeps them.
        underscored = any(b"_" in n for n, _ in r.headers)
        expect(bool(r.flags & F_UNDERSCORE_NAME) == underscored,
               f"{where}: F_UNDERSCORE_NAME does not match the field names")
        ours = [(_latin1(n).upper(), _latin1(v)) for n, v in r.headers
                if policy != "drop" or b"_" not in n]
        theirs = [(n.upper(), v) for n, v in w["headers"]]
        if case.data.get("config", {}).get("permit_obsolete_folding"):
            ours = [(n, _ows_collapse(v)) for n, v in ours]
            theirs = [(n, _ows_collapse(v)) for n, v in theirs]
        expect(ours == theirs, f"{where}: headers\n  ours   {ours}\n  theirs {theirs}")
        body = base64.b64decode(w["body_b64"])
        expect(bytes(m.body) == body, f"{where}: body {bytes(m.body)[:80]!r} != {body[:80]!r}")
        trailers = [(_latin1(n).upper(), _latin1(v)) for n, v in m.trailers]
        expect(trailers == [(n.upper(), v) for n, v in w.get("trailers", [])],
               f"{where}: trailers {trailers} != {w.get('trailers')}")


# Our error reasons that fit each gunicorn failure category (implementation-neutral classes).
GUNICORN_CATEGORY_REASONS: dict[str, set[str]] = {
    "invalid request line": {"bad_request_line", "bad_request_target", "bad_method",
                             "bad_http_version", "bare_lf", "bare_cr", "control_byte"},
    "invalid method": {"bad_method", "bad_request_line", "control_byte"},
    "invalid version": {"bad_http_version", "http_version_not_supported", "bad_request_line"},
    "invalid header": {"bad_field_value", "bad_field_name", "field_without_colon", "control_byte",
                       "bare_cr", "bare_lf", "bad_content_length",
                       "content_length_with_transfer_encoding", "transfer_encoding_not_chunked",
                       "chunked_applied_twice", "unknown_transfer_coding", "bad_transfer_encoding",
                       "transfer_encoding_in_http10", "duplicate_singleton_field",
                       "duplicate_host", "bad_host", "missing_host"},
    "invalid header name": {"bad_field_name", "field_without_colon", "control_byte",
                            "whitespace_before_first_field", "forbidden_trailer_field"},
    "obsolete line folding rejected": {"obsolete_line_folding"},
    "bad chunk": {"bad_chunk_size", "bad_chunk_extension", "chunk_extension_too_long",
                  "bad_chunk_data_end", "bare_cr", "bare_lf", "incomplete at EOF"},
    "limit exceeded": {"request_line_too_long", "field_too_large", "head_too_large",
                       "too_many_fields", "body_too_large"},
    "incomplete request (premature EOF)": {"incomplete_request", "incomplete at EOF"},
}


# Categories whose failure lies in the request head: no Request event may come for that request.
GUNICORN_HEAD_CATEGORIES = {"invalid request line", "invalid method", "invalid version",
                            "obsolete line folding rejected", "limit exceeded"}


def _failure_reason(run: Run) -> str | None:
    if run.error is not None:
        return run.error.reason
    if run.incomplete_at_eof:
        return "incomplete at EOF"
    return None


def check_gunicorn_invalid(case: Case, run: Run, rerun: Callable[..., Run]) -> None:
    """An error (or a close inside the bad request at EOF); the request that failed never completes;
    our reason fits gunicorn's category. When a missing Host hides the error the case is about, the
    case runs again with host_optional and must still fail, for the category's reason."""
    reason = _failure_reason(run)
    expect(reason is not None, f"expected a rejection, got {run.describe()}")
    category = case.data["category"]
    if reason == "missing_host":
        again = rerun(host_optional=True)
        if _failure_reason(again) is not None or category != "invalid header":
            run, reason = again, _failure_reason(again)
            expect(reason is not None,
                   f"rejected only for the missing Host; with host_optional: {run.describe()}")
    allowed = GUNICORN_CATEGORY_REASONS.get(category, set())
    expect(allowed, f"unknown gunicorn category {category!r}")
    expect(reason in allowed, f"reason {reason!r} does not fit category {category!r}")
    if run.error is not None:
        expect(400 <= run.error.status < 600, f"status {run.error.status} is not an error")
    if category in GUNICORN_HEAD_CATEGORIES:  # the bad request's head never reached the server
        expect(all(m.complete for m in run.messages),
               f"the head of the bad request was dispatched: {run.describe()}")


LLHTTP_FLAGS = {"CHUNKED": F_CHUNKED, "CONNECTION_CLOSE": F_CONN_CLOSE,
                "CONNECTION_KEEP_ALIVE": F_CONN_KEEP_ALIVE, "UPGRADE": F_UPGRADE,
                "CONTENT_LENGTH": F_LENGTH}


def _compare_llhttp_message(i: int, m: Message, w: dict[str, Any], unfolded: bool) -> None:
    r = m.request
    where = f"message {i}"
    expect(_latin1(r.method) == w["method"], f"{where}: method {r.method!r} != {w['method']!r}")
    expect(_latin1(r.target) == w["url"], f"{where}: url {r.target!r} != {w['url']!r}")
    expect(r.http_version == w["version"], f"{where}: version {r.http_version} != {w['version']}")
    # llhttp keeps trailing OWS in values and reports trailer fields after the header fields.
    ours = [(_latin1(n).lower(), _latin1(v)) for n, v in [*r.headers, *m.trailers]]
    theirs = [(n.lower(), v.rstrip(" \t")) for n, v in w["headers"]]
    if unfolded:  # RFC 9112 5.2: obs-fold becomes one or more SP; llhttp keeps the HTAB
        ours = [(n, _ows_collapse(v)) for n, v in ours]
        theirs = [(n, _ows_collapse(v)) for n, v in theirs]
    expect(ours == theirs, f"{where}: headers\n  ours   {ours}\n  theirs {theirs}")
    body = base64.b64decode(w["body_b64"])
    expect(bytes(m.body) == body, f"{where}: body {bytes(m.body)[:80]!r} != {body[:80]!r}")
    expect(m.complete == bool(w["message_complete"]),
           f"{where}: complete={m.complete}, llhttp message_complete={w['message_complete']}")
    hc = w.get("headers_complete") or {}
    for flag_name, bit in LLHTTP_FLAGS.items():
        theirs_set = flag_name in hc.get("flags", [])
        if flag_name == "CONTENT_LENGTH" and "TRANSFER_ENCODING" in hc.get("flags", []):
            continue  # llhttp sets it for any Content-Length field; we frame by one of them
        expect(bool(r.flags & bit) == theirs_set,
               f"{where}: flag {flag_name}: ours {bool(r.flags & bit)}, llhttp {theirs_set}")
    if r.flags & F_LENGTH:
        expect(r.content_length == hc.get("content_length"),
               f"{where}: content_length {r.content_length} != {hc.get('content_length')}")


def check_llhttp(case: Case, run: Run, rerun: Callable[..., Run]) -> None:
    d = case.data
    unfolded = "headers" in d.get("lenient_flags", [])
    outcome = d["outcome"]
    if outcome == "error" and d["error"] != "HPE_CLOSED_CONNECTION":
        before = d.get("parsed_before_error", [])
        reason = _failure_reason(run)
        expect(reason is not None, f"expected {d['error']}, got {run.describe()}")
        if reason == "missing_host":  # the error the case is about must still be found
            run = rerun(host_optional=True)
            expect(_failure_reason(run) is not None,
                   f"rejected only for the missing Host; with host_optional: {run.describe()}")
        done = [w for w in before if w.get("message_complete")]
        heads = [w for w in before if w.get("headers_complete")]
        expect(len(run.completed) == len(done),
               f"llhttp completed {len(done)} message(s) before {d['error']}; "
               f"we completed {len(run.completed)}: {run.describe()}")
        expect(len(run.messages) <= len(heads),
               f"we dispatched a head where llhttp had already failed: {run.describe()}")
        for i, (m, w) in enumerate(zip(run.completed, done, strict=False)):
            _compare_llhttp_message(i, m, w, unfolded)
        return

    unsafe_finish = case.eof and d.get("finish_return", 0) != 0
    if unsafe_finish:  # llhttp_finish() reports the message cut by EOF as an error
        expect(run.incomplete_at_eof, f"expected EOF inside a message: {run.describe()}")
    else:
        expect(run.error is None, f"expected {outcome}, got {run.describe()}")
    if outcome == "error":  # HPE_CLOSED_CONNECTION: the data after a non-persistent message
        want = d.get("parsed_before_error", [])
        expect(run.end == "close", f"expected a close after {len(want)} message(s): "
                                   f"{run.describe()}")
    else:
        want = [w for w in d["expect"]["messages"] if w.get("headers_complete")]
    expect(len(run.messages) == len(want),
           f"expected {len(want)} message(s), got {run.describe()}")
    for i, (m, w) in enumerate(zip(run.messages, want, strict=True)):
        _compare_llhttp_message(i, m, w, unfolded)
    if outcome == "paused_upgrade":
        offset = d["expect"]["upgrade"]["offset"]
        expect(run.end in ("upgrade", "tunnel"), f"expected an upgrade, got {run.describe()}")
        expect(run.tail == case.raw[offset:],
               f"the bytes after the upgrade should be {case.raw[offset:][:40]!r}, "
               f"got {(run.tail or b'')[:40]!r}")
        return
    if outcome == "complete":
        heads_pending = len(d["expect"]["messages"]) > len(want)
        if case.eof:
            if not unsafe_finish:
                expect(run.end in ("eof", "close") and run.closed_complete is not False,
                       f"EOF after complete messages must be clean: {run.describe()}")
        elif run.messages and not run.messages[-1].complete or heads_pending:
            expect(run.end == "need_data", f"expected to wait for more: {run.describe()}")
        else:
            expect(run.end in ("need_data", "close"), f"unexpected end: {run.describe()}")


def _raw_fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    """An independent, minimal reading of the first head's field lines (OWS = SP/HTAB only)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    out = []
    for line in head:
        name, _, value = line.partition(b":")
        out.append((name.lower(), value.strip(b" \t")))
    return out


GARDEN_REJECT_STATUS = {400, 501, 505}


def _garden_rejected(run: Run) -> None:
    expect(run.error is not None, f"expected a rejection, got {run.describe()}")
    assert run.error is not None
    expect(run.error.status in GARDEN_REJECT_STATUS,
           f"rejection status {run.error.status} not in {sorted(GARDEN_REJECT_STATUS)}")


def check_http_garden(case: Case, run: Run, rerun: Callable[..., Run]) -> None:
    want = case.data["expected"]
    if want == "reject":
        _garden_rejected(run)
    elif want == "reject_and_close":
        _garden_rejected(run)
    elif want == "reject_or_ignore_line":
        if run.error is None:
            expect(run.messages, f"neither rejected nor accepted: {run.describe()}")
            # Lines that start with whitespace must not have become fields.
            head = case.raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
            ignored = {ln.strip(b" \t").partition(b":")[0].lower() for ln in head
                       if ln[:1] in (b" ", b"\t")}
            names = {n for n, _ in run.messages[0].request.headers}
            expect(not ignored & names, f"a whitespace-prefixed line became a field: {ignored}")
    elif want == "reject_or_treat_as_chunked":
        if run.error is None:
            expect(run.messages and run.messages[0].request.flags & F_CHUNKED,
                   f"neither rejected nor framed as chunked: {run.describe()}")
    elif want == "accept_content_length_10":
        expect(run.error is None and len(run.completed) == 1,
               f"expected one request, got {run.describe()}")
        r = run.completed[0]
        expect(r.request.flags & F_LENGTH and r.request.content_length == 10 and len(r.body) == 10,
               f"expected a 10-byte Content-Length body, got {run.describe()}")
    elif want == "accept_single_request_with_trailer":
        expect(run.error is None and len(run.messages) == 1 and run.messages[0].complete,
               f"expected exactly one complete request, got {run.describe()}")
        expect(run.messages[0].trailers, "expected a trailer field")
        expect(run.end in ("need_data", "close", "eof"), f"unexpected end {run.describe()}")
    elif want == "accept_value_preserved":
        expect(run.error is None and run.completed, f"expected acceptance, got {run.describe()}")
        got = run.completed[0].request.headers
        ref = _raw_fields(case.raw)
        expect(got == ref, f"field values changed:\n  ours {got}\n  raw  {ref}")
    elif want == "respond_then_close":
        expect(len(run.completed) <= 1, f"more than one request processed: {run.describe()}")
        expect(run.error is not None or run.end == "close",
               f"expected a response and a close, got {run.describe()}")
    elif want == "two_requests":
        expect(run.error is None, f"expected two requests, got {run.describe()}")
        expect(len(run.messages) == 2 and all(m.complete for m in run.messages),
               f"expected exactly two complete requests, got {run.describe()}")
        for m in run.messages:
            req = m.request
            length = req.content_length if req.flags & F_LENGTH else len(m.body)
            expect(len(m.body) == length, f"body of {len(m.body)} bytes for {req!r}")
    elif want == "incomplete_payload":
        expect(run.error is None and not run.completed,
               f"an incomplete payload was taken as complete: {run.describe()}")
        expect(run.end == "need_data", f"expected to wait for the rest: {run.describe()}")
        closed = drive(case.segments, case_limits(case), eof=True)
        if closed.messages:
            expect(closed.incomplete_at_eof, f"EOF: {closed.describe()}")
    else:
        raise Mismatch(f"unknown HTTP Garden expectation {want!r}: map it in harness.py")


def check_corpus(case: Case, run: Run, rerun: Callable[..., Run]) -> None:
    if case.corpus == "gunicorn":
        if case.kind == "valid":
            check_gunicorn_valid(case, run)
        else:
            check_gunicorn_invalid(case, run, rerun)
    elif case.corpus == "llhttp":
        check_llhttp(case, run, rerun)
    else:
        check_http_garden(case, run, rerun)


# ---------------------------------------------------------------------------------- deviations

_ERROR = re.compile(r"(?:after (\d+) requests?: )?(\d{3}) ([a-z0-9_]+)")
_REQUESTS = re.compile(
    r"(\d+) requests?(?: \(last body ([^)]*)\))?, then "
    r"(close|EOF|tunnel|upgrade|waits for more|incomplete at EOF)")
_WITH = re.compile(r"with ([a-z_]+(?:, [a-z_]+)*): (.+)")
_END_WORDS = {"close": "close", "tunnel": "tunnel", "upgrade": "upgrade",
              "waits for more": "need_data"}


def parse_what(what: str) -> list[tuple[dict[str, Any], str]]:
    """Split a deviation's "what we do" into (options, outcome) steps. The first step runs with the
    case's own limits; each "; with OPTION[, OPTION]: OUTCOME" runs again with those options on."""
    steps: list[tuple[dict[str, Any], str]] = []
    for i, part in enumerate(what.split("; ")):
        if i == 0:
            steps.append(({}, part))
            continue
        m = _WITH.fullmatch(part)
        if not m:
            raise ValueError(f"cannot read deviation step {part!r}")
        steps.append(({opt: True for opt in m.group(1).split(", ")}, m.group(2)))
    for _, outcome in steps:
        if not (outcome == "as corpus" or _ERROR.fullmatch(outcome)
                or _REQUESTS.fullmatch(outcome)):
            raise ValueError(f"cannot read outcome {outcome!r}")
    return steps


def check_outcome(run: Run, outcome: str) -> None:
    """Outcome language of DEVIATIONS (see deviations.py)."""
    m = _ERROR.fullmatch(outcome)
    if m:
        n = int(m.group(1) or 0)
        status, reason = int(m.group(2)), m.group(3)
        expect(run.error is not None and (run.error.status, run.error.reason) == (status, reason),
               f"expected {outcome}, got {run.describe()}")
        expect(len(run.completed) == n, f"expected {n} complete request(s) before the error, "
                                        f"got {run.describe()}")
        return
    m = _REQUESTS.fullmatch(outcome)
    if not m:
        raise Mismatch(f"cannot read outcome {outcome!r}")
    n, last_body, end = int(m.group(1)), m.group(2), m.group(3)
    expect(run.error is None and len(run.messages) == n,
           f"expected {outcome}, got {run.describe()}")
    if end == "incomplete at EOF":
        expect(run.incomplete_at_eof, f"expected {outcome}, got {run.describe()}")
        expect(len(run.completed) == n - 1, f"expected {outcome}, got {run.describe()}")
    elif end == "waits for more":
        expect(run.end == "need_data", f"expected {outcome}, got {run.describe()}")
    elif end == "EOF":
        expect(run.end == "eof" and run.closed_complete and len(run.completed) == n,
               f"expected {outcome}, got {run.describe()}")
    else:
        expect(run.end == _END_WORDS[end] and len(run.completed) == n,
               f"expected {outcome}, got {run.describe()}")
    if last_body is not None:
        body = bytes(run.messages[-1].body)
        expect(repr(body) == last_body, f"last body {body!r}, expected {last_body}")


def check_deviation(case: Case, what: str) -> None:
    for options, outcome in parse_what(what):
        run = run_case(case, **options)
        if outcome == "as corpus":
            check_corpus(case, run, lambda o=options, **more: run_case(case, **{**o, **more}))
        else:
            check_outcome(run, outcome)


# ---------------------------------------------------------------------------------- judging


def unsupported_settings(case: Case) -> list[str]:
    """The settings of a case that do not exist at the parser level."""
    if case.corpus != "gunicorn":
        return []
    config = case.data.get("config", {})
    out = [k for k in config if k in GUNICORN_UNSUPPORTED]
    if config.get("header_map") == "refuse":
        out.append("header_map")
    out += [k for k in config
            if k not in GUNICORN_LIMITS and k not in GUNICORN_POLICIES
            and k not in GUNICORN_UNSUPPORTED]
    return out


PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def check_not_applicable(case: Case) -> None:
    """The case needs a setting we do not have at the parser level; check what still can be."""
    unsupported = unsupported_settings(case)
    expect(unsupported, f"{case.key} is listed as not applicable but needs no unsupported setting")
    config = case.data.get("config", {})
    # host_optional: a missing Host (400 anyway) must not hide what is checked here.
    run = run_case(case, host_optional=True)
    if "proxy_protocol" in unsupported:
        if case.raw.startswith((b"PROXY ", PROXY_V2_SIGNATURE)):
            expect(run.error is not None and run.error.status == 400 and not run.messages,
                   f"a PROXY line must be refused with 400: {run.describe()}")
        else:
            check_corpus(case, run_case(case), lambda **more: run_case(case, **more))
    if config.get("header_map") == "refuse":
        expect(run.messages and run.messages[0].request.flags & F_UNDERSCORE_NAME,
               f"F_UNDERSCORE_NAME should be set for the server's header_map policy: "
               f"{run.describe()}")
    if "casefold_http_method" in unsupported:
        want = case.data["requests"]
        expect(run.error is None and len(run.completed) == len(want),
               f"expected {len(want)} request(s), got {run.describe()}")
        for m, w in zip(run.completed, want, strict=True):
            expect(_latin1(m.request.method).upper() == w["method"].upper(),
                   f"method {m.request.method!r} != {w['method']!r} (ignoring case)")
    if "forwarded_allow_ips" in unsupported:
        raw_fields = _raw_fields(case.raw)
        expect(run.messages and run.messages[0].request.headers == raw_fields,
               f"the fields should reach the server unchanged: {run.describe()}")


def classify(case: Case) -> str:
    if case.key in NOT_APPLICABLE:
        return "not applicable"
    if case.key in DEVIATIONS:
        return "deviation"
    return "as corpus"


def deviation_kind(key: str) -> str:
    what, reason = DEVIATIONS[key]
    if reason.startswith("lenient case, rejected by design"):
        return "lenient case, rejected by design"
    if what.startswith("400 missing_host"):
        return "missing Host (RFC 9112 3.2)"
    return "other, by design"


def evaluate(case: Case) -> None:
    """Raise Mismatch unless the case behaves as its rule says."""
    check_integrity(case)
    rule = classify(case)
    if rule == "not applicable":
        check_not_applicable(case)
    elif rule == "deviation":
        check_deviation(case, DEVIATIONS[case.key][0])
    else:
        unsupported = unsupported_settings(case)
        expect(not unsupported, f"{case.key} needs settings the parser does not have "
                                f"({', '.join(unsupported)}): list it in NOT_APPLICABLE")
        check_corpus(case, run_case(case), lambda **more: run_case(case, **more))


@dataclass
class Tally:
    total: int = 0
    as_corpus: int = 0
    deviation: dict[str, int] = field(default_factory=dict)
    not_applicable: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.total - len(self.failed)


def tally(results: Iterable[tuple[Case, bool]]) -> dict[tuple[str, str], Tally]:
    out: dict[tuple[str, str], Tally] = {}
    for case, ok in results:
        t = out.setdefault((case.corpus, case.kind), Tally())
        t.total += 1
        if not ok:
            t.failed.append(case.key)
            continue
        rule = classify(case)
        if rule == "as corpus":
            t.as_corpus += 1
        elif rule == "not applicable":
            t.not_applicable += 1
        else:
            kind = deviation_kind(case.key)
            t.deviation[kind] = t.deviation.get(kind, 0) + 1
    return out


def evaluate_all(cases: Iterable[Case]) -> Iterator[tuple[Case, bool, str]]:
    for case in cases:
        try:
            evaluate(case)
        except Mismatch as e:
            yield case, False, str(e)
        else:
            yield case, True, ""


def summary_lines(tallies: dict[tuple[str, str], Tally]) -> list[str]:
    lines = []
    for (corpus, kind), t in sorted(tallies.items()):
        devs = ", ".join(f"{n} {k}" for k, n in sorted(t.deviation.items())) or "none"
        lines.append(f"{corpus:12} {kind:12} {t.passed:3}/{t.total:<3} pass: "
                     f"{t.as_corpus} as the corpus expects, {sum(t.deviation.values())} listed "
                     f"deviations ({devs}), {t.not_applicable} not applicable"
                     + (f"; FAILED: {', '.join(t.failed)}" if t.failed else ""))
    return lines


