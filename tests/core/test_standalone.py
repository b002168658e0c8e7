"""tricorn.core.standalone: the steps both standalone commands share, and their exit codes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from tricorn.core.settings import REGISTRY
from tricorn.core.standalone import EXIT_USAGE, StartupFailed, listening, prepare_process, start
from tricorn.core.worker import EXIT_BOOT_ERROR


def test_bad_settings_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(StartupFailed) as failed:
        start("wsgi", ["--backlog", "nope", "m:app"], prog="tricorn-x", version="1",
              description="x")
    assert failed.value.code == EXIT_USAGE
    assert capsys.readouterr().err.startswith("tricorn-x: error: ")


def test_logging_that_cannot_start_exits_3(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "error.log"
    with pytest.raises(StartupFailed) as failed:
        start("wsgi", ["--error-logfile", str(missing), "m:app"], prog="tricorn-x",
              version="1", description="x")
    assert failed.value.code == EXIT_BOOT_ERROR
    assert "tricorn-x: error: cannot set up logging" in capsys.readouterr().err


def test_prepare_and_listen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(os.getcwd())  # restored afterwards
    monkeypatch.delenv("TRICORN_STANDALONE_TEST", raising=False)
    cfg = REGISTRY.make("wsgi", {"chdir": str(tmp_path), "bind": ("127.0.0.1:0",),
                                 "env": (("TRICORN_STANDALONE_TEST", "1"),)}, environ={})
    log = logging.getLogger("tricorn.test.standalone")
    prepare_process(cfg, log)
    assert Path.cwd() == tmp_path.resolve() and os.environ["TRICORN_STANDALONE_TEST"] == "1"
    with listening(cfg, log) as (ssl_context, listeners):
        assert ssl_context is None and len(listeners) == 1
        sock = listeners[0].sock
        assert sock.getsockname()[1] != 0
    assert sock.fileno() == -1  # closed on the way out


def test_unusable_socket_exits_3(caplog: pytest.LogCaptureFixture) -> None:
    cfg = REGISTRY.make("wsgi", {"bind": ("unix:/nonexistent-dir/x.sock",)}, environ={})
    with pytest.raises(StartupFailed) as failed:
        with listening(cfg, logging.getLogger("tricorn.test.standalone")):
            pass
    assert failed.value.code == EXIT_BOOT_ERROR
