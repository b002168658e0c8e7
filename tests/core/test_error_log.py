"""The JSON error log (``--error-logformat json``): fields, escaping, exceptions, where it goes, and
a real tricorn-asgi / tricorn-wsgi / tricorn process whose stdout must be JSON lines only."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tricorn.core import settings as s
from tricorn.core.logs import (
    ERROR_LOG_FORMATS,
    JsonErrorFormatter,
    LineLogWriter,
    is_json_handler,
    setup_from_settings,
    setup_logging,
)

# 2024-03-05 06:07:08.250 UTC
T0 = 1709618828.25
KEYS = ["time", "level", "logger", "message", "pid"]


def make_record(msg: str = "hello", args: Any = None, level: int = logging.INFO,
                name: str = "tricorn.error", **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, extra.pop("exc_info", None),
                            sinfo=extra.pop("sinfo", None))
    rec.created = extra.pop("created", T0)
    return rec


def fmt(rec: logging.LogRecord) -> dict[str, Any]:
    line = JsonErrorFormatter().format(rec)
    assert_one_ascii_line(line)
    data: dict[str, Any] = json.loads(line)
    return data


def assert_one_ascii_line(line: str) -> None:
    assert "\n" not in line and "\r" not in line
    assert all(0x20 <= ord(c) < 0x7F for c in line), line


# --------------------------------------------------------------------------------------------------
# The formatter


def test_fields_and_their_order() -> None:
    line = JsonErrorFormatter().format(make_record("served %d requests", (3,)))
    data = json.loads(line)
    assert list(data) == KEYS
    assert data == {
        "time": "2024-03-05T06:07:08.250Z",
        "level": "INFO",
        "logger": "tricorn.error",
        "message": "served 3 requests",
        "pid": os.getpid(),
    }


def test_time_is_iso_8601_utc_with_milliseconds_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    time.tzset()
    try:
        formatter = JsonErrorFormatter()
        stamps = [
            json.loads(formatter.format(make_record(created=t)))["time"]
            for t in (T0, T0 + 0.001, T0 + 0.75, T0 + 1.999, 0.0, T0)
        ]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert stamps == [
        "2024-03-05T06:07:08.250Z",
        "2024-03-05T06:07:08.251Z",
        "2024-03-05T06:07:09.000Z",
        "2024-03-05T06:07:10.249Z",
        "1970-01-01T00:00:00.000Z",
        "2024-03-05T06:07:08.250Z",  # the one-second cache follows the record, not the clock
    ]


@pytest.mark.parametrize(
    "message",
    [
        'forged\n{"time":"2024-01-01T00:00:00.000Z","level":"CRITICAL","message":"owned"}',
        'quote " and backslash \\ and "} close',
        "cr\rlf\r\nnul\x00esc\x1b[31mbell\x07del\x7f",
        "unicode \u00e9 \u202e bidi \u2028 line-sep \u2029 \U0001f600 lone \udcff surrogate",
    ],
)
def test_hostile_messages_stay_one_line_and_decode_to_what_was_logged(message: str) -> None:
    data = fmt(make_record("peer said: %s", (message,)))
    assert data["message"] == "peer said: " + message
    assert data["level"] == "INFO"  # the forged fields did not become fields


def test_random_messages_never_break_the_line() -> None:
    rng = random.Random(8)
    formatter = JsonErrorFormatter()
    for _ in range(300):
        text = "".join(chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0, 0x110000)]))
                       for _ in range(rng.randrange(0, 30)))
        line = formatter.format(make_record("%s", (text,), name="tricorn." + text[:3]))
        assert_one_ascii_line(line)
        data = json.loads(line)
        assert data["message"] == text and data["logger"] == "tricorn." + text[:3]


def test_exception_text_is_one_field() -> None:
    try:
        raise ValueError('bad "value"\nsecond line')
    except ValueError:
        rec = make_record("request failed", level=logging.ERROR, exc_info=sys.exc_info())
    data = fmt(rec)
    assert list(data) == [*KEYS, "exception"]
    assert data["level"] == "ERROR" and data["message"] == "request failed"
    exc = data["exception"]
    assert exc.startswith("Traceback (most recent call last):\n")
    assert exc.endswith('ValueError: bad "value"\nsecond line')
    assert "test_exception_text_is_one_field" in exc


def test_logger_exception_and_stack_info(clean_logging: None, tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    logs = setup_logging(error_logfile=str(path), error_logformat="json")
    try:
        {}["missing"]  # noqa: B018
    except KeyError:
        logs.error.exception("lookup failed for %r", "missing")
    logs.error.warning("where am I", stack_info=True)
    logs.error.info("plain")
    logs.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "lookup failed for 'missing'"
    assert first["exception"].endswith("KeyError: 'missing'")
    assert second["level"] == "WARNING" and "exception" not in second
    assert second["stack"].startswith("Stack (most recent call last):\n")
    assert "test_logger_exception_and_stack_info" in second["stack"]
    assert list(third) == KEYS


def test_text_stays_the_default(clean_logging: None, tmp_path: Path) -> None:
    logs = setup_logging(error_logfile=str(tmp_path / "e.log"))
    assert not is_json_handler(logs.handler)
    assert type(logs.handler.formatter) is logging.Formatter
    logs.error.info("text")
    logs.close()
    assert f"[{os.getpid()}] [INFO] text" in (tmp_path / "e.log").read_text()


def test_unknown_error_log_format_is_refused(clean_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown error log format 'xml'"):
        setup_logging(error_logformat="xml")
    assert ERROR_LOG_FORMATS == ("text", "json")


def test_dev_stdout_and_dev_stderr_are_the_process_streams(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = setup_logging(error_logfile="/dev/stdout", error_logformat="JSON")
    logs.error.info("to stdout")
    logs.reopen()  # nothing to reopen
    logs.error.info("still stdout")
    logs = setup_logging(error_logfile="/dev/stderr", error_logformat="json")
    logs.error.info("to stderr")
    logs.close()
    captured = capsys.readouterr()
    assert [json.loads(x)["message"] for x in captured.out.splitlines()] == [
        "to stdout", "still stdout"]
    assert json.loads(captured.err)["message"] == "to stderr"


def test_setting_and_setup_from_settings(clean_logging: None, tmp_path: Path) -> None:
    cfg = s.REGISTRY.make("asgi", {"error_logfile": str(tmp_path / "e.log"),
                                   "error_log_format": "json"}, environ={})
    assert cfg[s.ERROR_LOGFORMAT] == "json"
    assert s.REGISTRY.make("wsgi", {}, environ={})[s.ERROR_LOGFORMAT] == "text"
    env = {"TRICORN_ERROR_LOGFORMAT": "json"}
    assert s.REGISTRY.load("arbiter", ["m:app"], environ=env)[s.ERROR_LOGFORMAT] == "json"
    cli = s.REGISTRY.load("wsgi", ["--error-logformat", "json", "m:app"], environ={})
    assert cli[s.ERROR_LOGFORMAT] == "json"
    with pytest.raises(s.SettingsError, match="error_logformat"):
        s.REGISTRY.load("wsgi", ["--error-logformat", "yaml", "m:app"], environ={})
    logs = setup_from_settings(cfg)
    assert is_json_handler(logs.handler)
    logs.error.error("from settings")
    logs.close()
    assert json.loads((tmp_path / "e.log").read_text())["message"] == "from settings"


def test_stack_dumps_keep_out_of_a_json_error_log(clean_logging: None, tmp_path: Path) -> None:
    """faulthandler writes raw text: a worker points it at the error log file only in text mode."""
    from tricorn.core.worker import _log_fd

    text = setup_logging(error_logfile=str(tmp_path / "text.log"))
    assert _log_fd(SimpleNamespace(logs=text)) == text.handler.stream.fileno()  # type: ignore[attr-defined,arg-type]
    as_json = setup_logging(error_logfile=str(tmp_path / "json.log"), error_logformat="json")
    assert _log_fd(SimpleNamespace(logs=as_json)) == sys.stderr.fileno()  # type: ignore[arg-type]
    as_json.close()


# --------------------------------------------------------------------------------------------------
# Raw application text (wsgi.errors) as records


def test_line_log_writer_turns_lines_into_records(clean_logging: None, tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    logs = setup_logging(error_logfile=str(path), error_logformat="json", log_level="critical")
    writer = LineLogWriter(logs.handler, "tricorn.wsgi.errors")
    assert writer.write("one\ntw") == 6
    writer.writelines(['o "2"\r\n', "three\n\n", "partial"])
    writer.flush()
    writer.flush()  # nothing pending: no empty record
    writer.write("x" * (LineLogWriter.MAX_PENDING + 1))  # no newline, too long to keep
    logs.close()
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["message"] for r in records] == [
        "one", 'two "2"', "three", "", "partial", "x" * (LineLogWriter.MAX_PENDING + 1)]
    # Not filtered by --log-level, as a raw stream would not be.
    assert {(r["logger"], r["level"]) for r in records} == {("tricorn.wsgi.errors", "ERROR")}


# --------------------------------------------------------------------------------------------------
# A real process: stdout is JSON lines only (error log + access log)

APP = '''
import logging

app_log = logging.getLogger("tricorn.error")


def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError('boom "quoted"\\nsecond line')
    environ["wsgi.errors"].write('app says "hi"\\n{"level":"FORGED"}\\n')
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/boom":
        raise RuntimeError('boom "quoted"\\nsecond line')
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
'''

COMMANDS = {
    "tricorn-asgi": ["tricorn-asgi", "errlog_app:asgi"],
    "tricorn-wsgi": ["tricorn-wsgi", "errlog_app:wsgi"],
    "tricorn-asgi --interface wsgi": ["tricorn-asgi", "--interface", "wsgi", "errlog_app:wsgi"],
    "tricorn": ["tricorn", "-k", "asgi", "-w", "1", "errlog_app:asgi"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _wait_up(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            if _get(port, b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not answer within 30 s")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_process_stdout_is_json_lines(tmp_path: Path, command: str) -> None:
    (tmp_path / "errlog_app.py").write_text(APP)
    port = _free_port()
    exe, *args = COMMANDS[command]
    argv = [str(Path(sys.executable).parent / exe), *args, "-b", f"127.0.0.1:{port}",
            "--error-logfile", "/dev/stdout", "--error-logformat", "json", "--log-level", "debug",
            "--access-logfile", "-", "--access-logformat", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICORN_")}
    env["PYTHONPATH"] = str(tmp_path)
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=err)
        try:
            _wait_up(proc, port)
            assert _get(port, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        ).startswith(b"HTTP/1.1 200")
            assert _get(port, b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        ).startswith(b"HTTP/1.1 500")
            # A malformed request whose bytes reach the debug log: quotes, CR, ESC, non-ASCII.
            _get(port, b'GET /"\x1b[31m\xff HTTP/1.1\r\nHost: "x\r\nBad Name: \r\r\n\r\n')
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = out_path.read_text(encoding="utf-8", errors="strict")
    lines = text.splitlines()
    assert text.endswith("\n") and lines, err_path.read_text()
    records = []
    for line in lines:
        assert_one_ascii_line(line)
        records.append(json.loads(line))  # every line of stdout is one JSON object
    errors = [r for r in records if "level" in r]
    access = [r for r in records if "status" in r]
    assert all(list(r)[:5] == KEYS for r in errors)
    assert [r["status"] for r in access if r["path"] == "/ok"] == [200]
    assert [r["status"] for r in access if r["path"] == "/boom"] == [500]
    boom = [r for r in errors if 'boom "quoted"\nsecond line' in r.get("exception", "")]
    assert len(boom) == 1 and boom[0]["level"] == "ERROR", errors
    assert boom[0]["exception"].startswith("Traceback (most recent call last):\n")
    assert any(r["level"] == "INFO" and "Listening at" in r["message"] for r in errors), errors
    if "wsgi" in command:
        app_lines = [r["message"] for r in errors if r["logger"] == "tricorn.wsgi.errors"]
        assert len(app_lines) >= 4 and app_lines[-2:] == ['app says "hi"', '{"level":"FORGED"}']
    if command == "tricorn":
        assert len({r["pid"] for r in errors}) >= 2  # the master and its worker
        assert proc.pid in {r["pid"] for r in errors}
    else:
        assert {r["pid"] for r in errors} == {proc.pid}
