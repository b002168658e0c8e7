"""Access-log formatting (Gunicorn atoms, JSON), log-injection escaping, log files and reopen."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tricorn.core import settings as s
from tricorn.core.logs import (
    DEFAULT_ACCESS_LOG_FORMAT,
    AccessFormatter,
    AccessLog,
    AccessRecord,
    Logs,
    escape_bytes,
    escape_str,
    setup_from_settings,
    setup_logging,
)

# 2024-03-05 06:07:08.250 UTC
T0 = 1709618828.25


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def record(**changes: Any) -> AccessRecord:
    base = AccessRecord(
        remote_addr="192.0.2.7",
        remote_port=51000,
        time=T0,
        method=b"GET",
        target=b"/search?q=tricorn&page=2",
        http_version="1.1",
        status=200,
        body_bytes=1234,
        request_headers=[
            (b"host", b"example.com"),
            (b"user-agent", b"curl/8.0"),
            (b"referer", b"https://example.org/"),
            (b"x-forwarded-for", b"203.0.113.9"),
        ],
        response_headers=[(b"Content-Type", b"text/html"), (b"X-Request-Id", b"abc")],
        duration=0.0123456,
        pid=4321,
    )
    return dataclasses.replace(base, **changes)


def fmt(format_string: str, rec: AccessRecord | None = None) -> str:
    return AccessFormatter(format_string).format(rec or record())


# --------------------------------------------------------------------------------------------------
# Text format


def test_default_format() -> None:
    assert fmt(DEFAULT_ACCESS_LOG_FORMAT) == (
        '192.0.2.7 - - [05/Mar/2024:06:07:08 +0000] "GET /search?q=tricorn&page=2 HTTP/1.1" '
        '200 1234 "https://example.org/" "curl/8.0"'
    )


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "192.0.2.7"),
        ("l", "-"),
        ("u", "-"),
        ("t", "[05/Mar/2024:06:07:08 +0000]"),
        ("r", "GET /search?q=tricorn&page=2 HTTP/1.1"),
        ("m", "GET"),
        ("U", "/search"),
        ("q", "q=tricorn&page=2"),
        ("H", "HTTP/1.1"),
        ("s", "200"),
        ("B", "1234"),
        ("b", "1234"),
        ("f", "https://example.org/"),
        ("a", "curl/8.0"),
        ("T", "0"),
        ("M", "12"),
        ("D", "12345"),
        ("L", "0.012346"),
        ("p", "<4321>"),
        ("{X-Forwarded-For}i", "203.0.113.9"),
        ("{x-forwarded-for}i", "203.0.113.9"),
        ("{accept}i", "-"),
        ("{x-request-id}o", "abc"),
        ("{Content-Type}o", "text/html"),
        ("{missing}o", "-"),
        ("{REMOTE_USER}e", "-"),
        ("zz", "-"),
    ],
)
def test_each_atom(atom: str, expected: str) -> None:
    assert fmt(f"%({atom})s") == expected


def test_empty_body_and_timezone_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = record(body_bytes=0, status=204)
    assert fmt("%(s)s %(B)s %(b)s", rec) == "204 0 -"
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    assert fmt("%(t)s") == "[05/Mar/2024:01:07:08 -0500]"


def test_explicit_path_and_query_win_over_the_target() -> None:
    rec = record(target=b"http://example.com/a?b", path=b"/a", query=b"b")
    assert fmt("%(U)s|%(q)s|%(r)s", rec) == "/a|b|GET http://example.com/a?b HTTP/1.1"
    assert fmt("%(q)s", record(target=b"/no-query")) == ""


def test_environ_like_extras() -> None:
    rec = record(extras={"REMOTE_USER": "alice", "wsgi.url_scheme": "https", "n": 5})
    assert fmt("%({remote_user}e)s %({wsgi.url_scheme}e)s %({n}e)s %({x}e)s", rec) == (
        "alice https 5 -"
    )


def test_basic_auth_user() -> None:
    token = base64.b64encode(b"alice:secret").decode()
    rec = record(request_headers=[(b"authorization", f"Basic {token}".encode())])
    assert fmt("%(u)s", rec) == "alice"
    rec = record(request_headers=[(b"authorization", b"Bearer abc")])
    assert fmt("%(u)s", rec) == "-"
    rec = record(request_headers=[(b"authorization", b"Basic !!!notbase64")])
    assert fmt("%(u)s", rec) == "-"


def test_printf_conversions_and_percent_literals() -> None:
    assert fmt("%(D)d us %(s)5s 100%% %(M)05d") == "12345 us   200 100% 00012"


@pytest.mark.parametrize("bad", ["%(h)", "%s %(h)s", "100% done", "%(h)s %(", "%(h)d"])
def test_malformed_formats_fail_at_compile_time(bad: str) -> None:
    with pytest.raises(ValueError):
        AccessFormatter(bad)


def test_line_breaks_in_the_format_itself_are_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        AccessFormatter("%(h)s\n%(s)s")


def test_only_atoms_in_the_format_are_computed() -> None:
    class Exploding:
        def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
            raise AssertionError("request headers were read for a format that does not use them")

    formatter = AccessFormatter("%(s)s %(m)s")
    assert formatter.atoms == ("s", "m")
    rec = record(request_headers=Exploding(), response_headers=Exploding())
    assert formatter.format(rec) == "200 GET"
    with pytest.raises(AssertionError):
        AccessFormatter("%(a)s").format(rec)


def test_timestamp_cache_follows_the_second() -> None:
    formatter = AccessFormatter("%(t)s")
    assert formatter.format(record(time=T0)) == "[05/Mar/2024:06:07:08 +0000]"
    assert formatter.format(record(time=T0 + 0.5)) == "[05/Mar/2024:06:07:08 +0000]"
    assert formatter.format(record(time=T0 + 1)) == "[05/Mar/2024:06:07:09 +0000]"


# --------------------------------------------------------------------------------------------------
# Log injection (reliability P36, CVE-2020-7694)

HOSTILE_TARGET = b'/%1b%5b31m\x1b[31mRED\r\nFAKE 200 "quoted" back\\slash \xff\xfe\x00end'
HOSTILE_UA = b'Mozilla\x1b]0;owned\x07 "x" \n127.0.0.1 - - [forged]'


def hostile() -> AccessRecord:
    return record(
        method=b"G\x1bET",
        target=HOSTILE_TARGET,
        request_headers=[(b"user-agent", HOSTILE_UA), (b"referer", b"\r\n\t")],
        response_headers=[(b"x-app", b"line1\nline2")],
        extras={"who": "m\u00e9\u202e\U0001f600\n"},
    )


def assert_single_safe_line(line: str) -> None:
    assert "\n" not in line and "\r" not in line
    assert all(0x20 <= ord(c) < 0x7F for c in line), line


def test_text_format_escapes_hostile_request_fields() -> None:
    line = fmt(DEFAULT_ACCESS_LOG_FORMAT + " %(U)s %(q)s %({x-app}o)s %({who}e)s", hostile())
    assert_single_safe_line(line)
    # The raw target is logged as received: %1b stays %1b (never URL-unquoted), ESC is escaped.
    assert (
        '/%1b%5b31m\\x1b[31mRED\\r\\nFAKE 200 \\"quoted\\" back\\\\slash \\xff\\xfe\\x00end' in line
    )
    assert "G\\x1bET" in line
    assert '"Mozilla\\x1b]0;owned\\x07 \\"x\\" \\n127.0.0.1 - - [forged]"' in line
    assert '"\\r\\n\\t"' in line
    assert "line1\\nline2" in line
    assert "m\\xe9\\u202e\\U0001f600\\n" in line
    # Quotes are escaped, so the quoted fields of the default format cannot be closed early.
    unescaped_quotes = re.findall(r'(?<!\\)"', line)
    assert len(unescaped_quotes) == 6


def test_json_format_is_valid_and_escaped() -> None:
    line = AccessFormatter("json").format(hostile())
    assert_single_safe_line(line)
    data = json.loads(line)
    assert set(data) == {
        "time", "remote_addr", "remote_port", "method", "path", "query", "protocol", "status",
        "bytes", "duration_ms", "referer", "user_agent", "pid",
    }  # fmt: skip
    # Decoded values carry escapes, not control characters: a log viewer cannot be injected.
    for value in data.values():
        if isinstance(value, str):
            assert all(0x20 <= ord(c) < 0x7F for c in value), value
    assert data["method"] == "G\\x1bET"
    assert data["path"] == (
        '/%1b%5b31m\\x1b[31mRED\\r\\nFAKE 200 "quoted" back\\\\slash \\xff\\xfe\\x00end'
    )
    assert data["user_agent"] == 'Mozilla\\x1b]0;owned\\x07 "x" \\n127.0.0.1 - - [forged]'
    assert data["referer"] == "\\r\\n\\t"


def test_json_format_values() -> None:
    data = json.loads(AccessFormatter("json").format(record()))
    assert data == {
        "time": "2024-03-05T06:07:08.250Z",
        "remote_addr": "192.0.2.7",
        "remote_port": 51000,
        "method": "GET",
        "path": "/search",
        "query": "q=tricorn&page=2",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 1234,
        "duration_ms": 12.346,
        "referer": "https://example.org/",
        "user_agent": "curl/8.0",
        "pid": 4321,
    }
    bare = json.loads(AccessFormatter("json").format(record(request_headers=[])))
    assert bare["referer"] is None and bare["user_agent"] is None


def test_json_lines_stay_valid_for_random_bytes() -> None:
    rng = random.Random(7694)
    formatter = AccessFormatter("json")
    text_formatter = AccessFormatter(DEFAULT_ACCESS_LOG_FORMAT)
    for _ in range(500):
        method, target, agent = (rng.randbytes(rng.randrange(0, 40)) for _ in range(3))
        addr = "".join(
            chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0, 0x11000)]))
            for _ in range(rng.randrange(0, 6))
        )
        rec = record(
            method=method,
            target=target,
            remote_addr=addr,  # may hold lone surrogates and astral characters
            request_headers=[(b"user-agent", agent)],
        )
        line = formatter.format(rec)
        assert_single_safe_line(line)
        data = json.loads(line)
        assert data["method"] == escape_bytes(method, quote=False)
        assert data["path"] == escape_bytes(target.partition(b"?")[0], quote=False)
        assert data["user_agent"] == escape_bytes(agent, quote=False)
        assert data["remote_addr"] == escape_str(rec.remote_addr, quote=False)
        assert_single_safe_line(text_formatter.format(rec))


@pytest.mark.parametrize(
    ("raw", "text", "json_text"),
    [
        (b"plain/ascii?x=1", "plain/ascii?x=1", "plain/ascii?x=1"),
        (b'a"b', 'a\\"b', 'a"b'),
        (b"a\\b", "a\\\\b", "a\\\\b"),
        (b"\x1b[0m", "\\x1b[0m", "\\x1b[0m"),
        (b"\r\n\t\x7f\x80\x9b", "\\r\\n\\t\\x7f\\x80\\x9b", "\\r\\n\\t\\x7f\\x80\\x9b"),
        ("caf\u00e9".encode(), "caf\\xc3\\xa9", "caf\\xc3\\xa9"),
    ],
)
def test_escape_bytes(raw: bytes, text: str, json_text: str) -> None:
    assert escape_bytes(raw) == text
    assert escape_bytes(raw, quote=False) == json_text


def test_escape_str() -> None:
    assert escape_str("ok") == "ok"
    assert escape_str('\x1b"\u00e9\u2028\U0001f600') == '\\x1b\\"\\xe9\\u2028\\U0001f600'
    assert escape_str('"', quote=False) == '"'


# --------------------------------------------------------------------------------------------------
# Files


def test_access_log_writes_one_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "%(m)s %(U)s %(s)s")
    log.log(record())
    log.log(hostile())
    log.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "GET /search 200"
    assert lines[1].startswith("G\\x1bET /%1b%5b31m\\x1b[31mRED\\r\\nFAKE")
    assert len(lines) == 2


def test_access_log_reopen_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "%(s)s")
    log.log(record(status=200))
    os.rename(path, tmp_path / "access.log.1")
    log.log(record(status=201))  # still goes to the renamed file
    log.reopen()
    log.log(record(status=202))
    log.close()
    assert (tmp_path / "access.log.1").read_text() == "200\n201\n"
    assert path.read_text() == "202\n"


def test_access_log_buffered_mode_needs_flush(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "%(s)s", autoflush=False)
    log.log(record())
    assert path.read_text() == ""
    log.flush()
    assert path.read_text() == "200\n"
    log.close()


def test_access_log_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log = AccessLog("-", "json")
    log.log(record())
    log.reopen()  # a no-op for stdout
    log.close()
    out = capsys.readouterr().out
    assert json.loads(out)["status"] == 200
    assert out.count("\n") == 1


def test_access_log_write_failure_does_not_raise(
    tmp_path: Path, clean_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = AccessLog(str(tmp_path / "a.log"), "%(s)s")
    log.close()
    logging.getLogger("tricorn").propagate = True
    with caplog.at_level(logging.ERROR, logger="tricorn.error"):
        log.log(record())
        log.log(record())
    assert log.failures == 2
    assert len([r for r in caplog.records if "cannot write to access log" in r.message]) == 1


def test_setup_logging_error_log_file_level_and_reopen(tmp_path: Path, clean_logging: None) -> None:
    path = tmp_path / "error.log"
    logs = setup_logging(log_level="warning", error_logfile=str(path))
    logging.getLogger("tricorn.core.something").info("hidden")
    logs.error.warning("first")
    os.rename(path, tmp_path / "error.log.1")
    logs.reopen()
    logs.error.error("second")
    logs.close()
    old = (tmp_path / "error.log.1").read_text()
    new = path.read_text()
    assert "hidden" not in old and "first" in old and "[WARNING]" in old
    assert f"[{os.getpid()}]" in old
    assert "second" in new and "first" not in new
    assert logs.access is None


def test_reopen_failure_keeps_the_old_files(tmp_path: Path, clean_logging: None) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    logs = setup_logging(
        error_logfile=str(logdir / "error.log"), access_logfile=str(logdir / "access.log")
    )
    assert logs.access is not None
    os.rename(logdir, tmp_path / "moved")  # the directory is gone: reopening fails
    logs.reopen()
    logs.access.log(record())
    logs.close()
    errors = (tmp_path / "moved" / "error.log").read_text()
    assert errors.count("cannot reopen log file") == 2
    assert (tmp_path / "moved" / "access.log").read_text().count("\n") == 1


def test_setup_logging_replaces_its_previous_handler(tmp_path: Path, clean_logging: None) -> None:
    first = setup_logging(error_logfile=str(tmp_path / "one.log"))
    second = setup_logging(error_logfile=str(tmp_path / "two.log"), log_level="trace")
    second.error.log(5, "traced")
    tricorn_handlers = logging.getLogger("tricorn").handlers
    assert first.handler not in tricorn_handlers and second.handler in tricorn_handlers
    second.close()
    assert "[TRACE] traced" in (tmp_path / "two.log").read_text()
    assert (tmp_path / "one.log").read_text() == ""


def test_setup_logging_rejects_unknown_level(clean_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging(log_level="loud")


def test_setup_from_settings(tmp_path: Path, clean_logging: None) -> None:
    cfg = s.REGISTRY.make(
        "wsgi",
        {
            "access_logfile": str(tmp_path / "access.log"),
            "access_logformat": "json",
            "error_logfile": str(tmp_path / "error.log"),
            "log_level": "debug",
        },
        environ={},
    )
    logs: Logs = setup_from_settings(cfg)
    assert logs.access is not None and logs.access.formatter.fmt == "json"
    logs.access.log(record())
    logs.error.debug("dbg")
    logs.close()
    assert json.loads((tmp_path / "access.log").read_text())["path"] == "/search"
    assert "[DEBUG] dbg" in (tmp_path / "error.log").read_text()
