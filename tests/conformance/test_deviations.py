"""The deviation list, the harness and the summary are themselves checked.

- every entry of deviations.py is well-formed, names a case of the corpus, and is *needed* (the case
  really differs from the corpus' expectation, so no entry can linger after a fix);
- the harness is not vacuous: it refuses behaviour that differs from an expectation;
- the pass-count summary per corpus is computed and recorded, and docs/conformance.md renders;
- the corpus folder is found relative to the repository, and its absence fails in CI.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from tricorn.core.errors import ProtocolError

HERE = Path(__file__).resolve().parent


def test_every_entry_is_well_formed(h: Any) -> None:
    for key, (what, why) in h.DEVIATIONS.items():
        corpus = key.split("/", 1)[0]
        assert corpus in h.CORPORA, key
        h.parse_what(what)  # raises on anything check_outcome cannot read
        assert "RFC" in why, f"{key}: the reason must cite the RFC rule"
        assert key not in h.NOT_APPLICABLE, f"{key} is both a deviation and not applicable"
    for key, why in h.NOT_APPLICABLE.items():
        assert key.split("/", 1)[0] in h.CORPORA and why, key


def test_every_entry_names_a_case(h: Any, corpus_present: None) -> None:
    keys = {c.key for c in h.load_all()}
    unknown = sorted(k for k in [*h.DEVIATIONS, *h.NOT_APPLICABLE] if k not in keys)
    assert not unknown, f"entries for cases that are not in the corpus: {unknown}"


def test_every_case_is_collected(h: Any, corpus_present: None) -> None:
    """Each case belongs to a (corpus, kind) that has a parametrized test."""
    strays = [c.key for c in h.load_all() if (c.corpus, c.kind) not in h.KINDS]
    assert not strays, f"cases of an unknown kind would never run: {strays}"


def test_every_deviation_is_needed(h: Any, corpus_present: None) -> None:
    """A listed case must really differ from the corpus: after a fix, its entry has to go."""
    needless = []
    for case in h.load_all():
        if case.key not in h.DEVIATIONS:
            continue
        try:
            h.check_corpus(case, h.run_case(case), lambda c=case, **more: h.run_case(c, **more))
        except h.Mismatch:
            continue
        needless.append(case.key)
    assert not needless, f"these cases now behave as the corpus expects: {needless}"


def test_cases_needing_unsupported_settings_are_listed(h: Any, corpus_present: None) -> None:
    for case in h.load_all():
        if h.unsupported_settings(case):
            assert case.key in h.NOT_APPLICABLE, f"{case.key} needs {h.unsupported_settings(case)}"


# ---------------------------------------------------------------------------- the harness itself


def _case(h: Any, corpus: str, raw: bytes, data: dict[str, Any], kind: str = "valid") -> Any:
    return h.Case(corpus, kind, "synthetic", "synthetic", (raw,), corpus == "gunicorn", data)


def _gunicorn_valid(body: bytes) -> dict[str, Any]:
    return {"config": {}, "requests": [{
        "method": "POST", "uri": {"raw": "/"}, "version": [1, 1],
        "headers": [["HOST", "a"], ["CONTENT-LENGTH", "5"]],
        "body_b64": base64.b64encode(body).decode(), "trailers": []}]}


def test_harness_accepts_a_matching_case_and_refuses_a_different_body(h: Any) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    h.evaluate(_case(h, "gunicorn", raw, _gunicorn_valid(b"hello")))
    with pytest.raises(h.Mismatch, match="body"):
        h.evaluate(_case(h, "gunicorn", raw, _gunicorn_valid(b"world")))


def test_harness_refuses_an_accepted_invalid_case(h: Any) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    case = _case(h, "gunicorn", raw, {"config": {}, "category": "invalid header"}, "invalid")
    with pytest.raises(h.Mismatch, match="expected a rejection"):
        h.evaluate(case)


def test_harness_checks_the_rejection_category(h: Any) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"  # a header error, not a chunk error
    case = _case(h, "gunicorn", raw, {"config": {}, "category": "bad chunk"}, "invalid")
    with pytest.raises(h.Mismatch, match="does not fit category"):
        h.evaluate(case)


def test_outcome_language(h: Any) -> None:
    run = h.drive([b"GET / HTTP/1.1\r\n\r\n"], h.limits_for(), eof=False)
    h.check_outcome(run, "400 missing_host")
    with pytest.raises(h.Mismatch):
        h.check_outcome(run, "400 bad_request_line")
    with pytest.raises(h.Mismatch):
        h.check_outcome(run, "after 1 request: 400 missing_host")
    run = h.drive([b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"], h.limits_for(), eof=False)
    h.check_outcome(run, "1 request, then close")
    with pytest.raises(h.Mismatch):
        h.check_outcome(run, "2 requests, then close")
    run = h.drive([b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab"],
                  h.limits_for(), eof=True)
    h.check_outcome(run, "1 request (last body b'ab'), then incomplete at EOF")
    with pytest.raises(ValueError):
        h.parse_what("400 missing_host; with: as corpus")
    with pytest.raises(ValueError):
        h.parse_what("accepted, more or less")


def test_driver_answers_and_pipelines(h: Any) -> None:
    run = h.drive([b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"],
                  h.limits_for(), eof=True)
    assert [m.request.target for m in run.completed] == [b"/1", b"/2"]
    assert len(run.responses) == 2 and all(r.startswith(b"HTTP/1.1 200") for r in run.responses)
    assert run.end == "eof" and run.closed_complete
    run = h.drive([b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nRAW"],
                  h.limits_for(), eof=False)
    assert run.end == "upgrade" and run.tail == b"RAW"
    assert run.responses[0].startswith(b"HTTP/1.1 101 ")
    run = h.drive([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"BAD\r\n\r\n", b"GET / HTTP/1.1\r\n"],
                  h.limits_for(), eof=False)
    assert len(run.completed) == 1 and isinstance(run.error, ProtocolError)


def test_dispatched_is_what_a_server_hands_its_application(h: Any) -> None:
    """The server-side oracle: complete requests up to the first one the server answers itself."""
    get = b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n"
    upgrade = b"GET /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
    connect = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"
    case = h.Case("llhttp", "strict", "synthetic", "synthetic",
                  (get % 1, upgrade + get % 2, b"POST /3 HTTP/1.1\r\nHost: a\r\n"
                   b"Content-Length: 2\r\n\r\nok" + connect + get % 4), False, {})
    targets = [m.request.target for m in h.dispatched(case, h.limits_for())]
    assert targets == [b"/1", b"/u", b"/2", b"/3"]  # an upgrade goes on as HTTP; CONNECT stops it
    assert bytes(h.dispatched(case, h.limits_for())[3].body) == b"ok"
    refuse_2 = [m.request.target for m in h.dispatched(
        case, h.limits_for(), lambda req: req.target != b"/2")]
    assert refuse_2 == [b"/1", b"/u"]
    # An incomplete request at the half-close, or a protocol error, ends the dispatched list.
    cut = h.Case("llhttp", "strict", "s", "s", (get % 1 + b"POST / HTTP/1.1\r\nHost: a\r\n"
                                                 b"Content-Length: 9\r\n\r\nabc",), True, {})
    assert [m.request.target for m in h.dispatched(cut, h.limits_for())] == [b"/1"]
    bad = h.Case("llhttp", "strict", "s", "s", (get % 1 + b"BAD\r\n\r\n" + get % 2,), False, {})
    assert [m.request.target for m in h.dispatched(bad, h.limits_for())] == [b"/1"]


def test_corpus_says_invalid_and_server_config(h: Any) -> None:
    def case(corpus: str, kind: str, data: dict[str, Any]) -> Any:
        return h.Case(corpus, kind, "s", "s", (b"",), False, data)

    assert h.corpus_says_invalid(case("gunicorn", "invalid", {}))
    assert not h.corpus_says_invalid(case("gunicorn", "valid", {}))
    assert h.corpus_says_invalid(case("llhttp", "strict", {"outcome": "error"}))
    assert not h.corpus_says_invalid(case("llhttp", "lenient", {"outcome": "complete"}))
    assert h.corpus_says_invalid(case("http-garden", "server-bugs", {"expected": "reject_and_close"}))
    assert not h.corpus_says_invalid(case("http-garden", "server-bugs", {"expected": "two_requests"}))
    config = {"header_map": "refuse", "limit_request_field_size": 98}
    assert h.server_config(case("gunicorn", "invalid", {"config": config})) == config
    assert h.server_config(case("gunicorn", "valid", {})) == {}
    assert h.server_config(case("llhttp", "strict", {"config": config})) == {}


_G = b"GET / HTTP/1.1\r\nHost: a\r\n"
_CH = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

# every `expected` value of the HTTP Garden corpus: (value, bytes that meet it, bytes that do not)
GARDEN = [
    ("reject", _G + b"Content-Length: 1Z\r\n\r\nZ", _G + b"\r\n"),
    ("reject_and_close", _G + b": x\r\n\r\n", _G + b"\r\n"),
    ("reject_or_ignore_line", b"GET / HTTP/1.1\r\n\tContent-Length: 1\r\n\r\nX",
     b"GET / HTTP/1.1\r\n"),
    ("reject_or_treat_as_chunked", _CH + b"0\r\n\r\n", _G + b"Content-Length: 0\r\n\r\n"),
    ("accept_content_length_10", _G + b"Content-Length: 10\r\n\r\n0123456789",
     _G + b"Content-Length: 9\r\n\r\n012345678"),
    ("accept_single_request_with_trailer", _CH + b"0\r\nX: y\r\n\r\n", _CH + b"0\r\n\r\n"),
    ("accept_value_preserved", _G + b"User: \x85admin\xa0\r\n\r\n", _G + b"User: a\x00\r\n\r\n"),
    ("respond_then_close", _G + b"Connection: close\r\n\r\n" + _G + b"\r\n",
     _G + b"\r\n" + _G + b"\r\n"),
    ("two_requests", _G + b"\r\n" + _G + b"\r\n", _G + b"\r\n"),
    ("incomplete_payload", _CH, _CH + b"0\r\n\r\n"),
]


@pytest.mark.parametrize(("expected", "good", "bad"), GARDEN, ids=[g[0] for g in GARDEN])
def test_every_garden_expectation_is_checked(h: Any, expected: str, good: bytes,
                                             bad: bytes) -> None:
    """Each value the corpus README names maps to a check that passes and fails when it should."""
    def case(raw: bytes) -> Any:
        return h.Case("http-garden", "server-bugs", "synthetic", "synthetic", (raw,), False,
                      {"expected": expected})
    h.evaluate(case(good))
    with pytest.raises(h.Mismatch):
        h.evaluate(case(bad))


def test_unknown_garden_expectation_fails(h: Any) -> None:
    case = h.Case("http-garden", "server-bugs", "synthetic", "synthetic", (_G + b"\r\n",), False,
                  {"expected": "something_new"})
    with pytest.raises(h.Mismatch, match="unknown HTTP Garden expectation"):
        h.evaluate(case)


# ---------------------------------------------------------------------------- summary and report


def test_pass_count_summary(h: Any, corpus_present: None, record_property: Any) -> None:
    """The per-corpus counts (also printed by conftest's terminal summary) add up."""
    cases = h.load_all()
    results = list(h.evaluate_all(cases))
    tallies = h.tally((c, ok) for c, ok, _ in results)
    assert {corpus for corpus, _ in tallies} == set(h.CORPORA)
    assert sum(t.total for t in tallies.values()) == len(cases)
    for t in tallies.values():
        assert t.as_corpus + sum(t.deviation.values()) + t.not_applicable + len(t.failed) == t.total
    lines = h.summary_lines(tallies)
    assert len(lines) == len(tallies)
    for (corpus, kind), t in tallies.items():
        record_property(f"{corpus}/{kind}", f"{t.passed}/{t.total}")
    assert not [c.key for c, ok, _ in results if not ok]


def test_report_renders(h: Any, corpus_present: None) -> None:
    spec = importlib.util.spec_from_file_location("tricorn_conformance_report", HERE / "report.py")
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    text, failures = report.render()
    assert failures == 0
    assert "## Results" in text
    for key in [*h.DEVIATIONS, *h.NOT_APPLICABLE]:
        assert key.split("/", 1)[1] in text, key


# ---------------------------------------------------------------------------- the corpus folder


def test_corpus_folder_is_found_from_the_repository(h: Any, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv(h.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert h.corpus_dir() == h.REPO_ROOT.parent / "shared" / "conformance"
    assert (h.REPO_ROOT / "packages" / "core").is_dir()
    monkeypatch.setenv(h.ENV_VAR, "some/where")
    assert h.corpus_dir() == h.REPO_ROOT / "some" / "where"
    monkeypatch.setenv(h.ENV_VAR, str(tmp_path))
    assert h.corpus_dir() == tmp_path


def test_absent_corpus_skips_but_fails_in_ci(h: Any, corpus_guard: Any,
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv(h.ENV_VAR, str(tmp_path / "absent"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="absent"):
        corpus_guard()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        corpus_guard()

