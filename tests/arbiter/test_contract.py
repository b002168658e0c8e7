"""The worker contract in tricorn.core.worker and the heartbeat page in tricorn.core.heartbeat,
in-process (no fork): exit codes, class resolution, the shared page's fields, the settings.

Checks that import a settings module (the arbiter's, the servers') run in a child interpreter:
importing one registers its settings into the process-wide registry, which would change what the
core tests of the same pytest run see."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tricorn.core.apploader import AppLoadError
from tricorn.core.heartbeat import (
    DURATION_BUCKETS,
    EVENT_LIMIT,
    EVENT_READY,
    EVENT_RECORD,
    HeartbeatSlot,
    WorkerHeartbeat,
)
from tricorn.core.worker import (
    EXIT_APP_LOAD_ERROR,
    EXIT_BOOT_ERROR,
    EXIT_OK,
    WORKER_CLASSES,
    Heartbeat,
    Hooks,
    NullHeartbeat,
    WorkerClassError,
    resolve_worker_class,
)

SUPPORT = Path(__file__).resolve().parent / "support"


def run_py(code: str) -> None:
    """Run `code` in a fresh interpreter (support/ on sys.path); fail with its output."""
    env = dict(os.environ, PYTHONPATH=str(SUPPORT))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=60, env=env, cwd=str(SUPPORT))
    assert out.returncode == 0, out.stdout + out.stderr


def test_exit_codes() -> None:
    assert (EXIT_OK, EXIT_BOOT_ERROR, EXIT_APP_LOAD_ERROR) == (0, 3, 4)
    assert AppLoadError.exit_code == EXIT_APP_LOAD_ERROR


def test_short_names_and_import_strings() -> None:
    assert set(WORKER_CLASSES) == {"sync", "gthread", "asgi"}
    sys.path.insert(0, str(SUPPORT))
    assert resolve_worker_class("testworker:TestWorker").__name__ == "TestWorker"
    assert resolve_worker_class("testworker.TestWorker").__name__ == "TestWorker"  # Gunicorn style
    with pytest.raises(WorkerClassError, match="not a class with run"):
        resolve_worker_class("tricorn.core.worker:NullHeartbeat")
    with pytest.raises(WorkerClassError, match="not found"):
        resolve_worker_class("no_such_package.mod:Worker")
    with pytest.raises(WorkerClassError, match="unknown worker class"):
        resolve_worker_class("nope")
    with pytest.raises(WorkerClassError, match="has no"):
        resolve_worker_class("tricorn.core.worker:Missing")


def test_sync_with_threads_is_gthread_and_server_classes_fit() -> None:
    pytest.importorskip("tricorn.wsgi")
    run_py("""
        from tricorn.core.worker import WORKER_CLASSES, Worker, WorkerClassError, resolve_worker_class
        assert resolve_worker_class("sync", threads=4).__name__ == "ThreadWorker"
        assert resolve_worker_class("sync").__name__ == "SyncWorker"
        for name in WORKER_CLASSES:
            try:
                cls = resolve_worker_class(name)
            except WorkerClassError:
                continue  # that server package is not installed
            assert issubclass(cls, Worker), name
    """)


def test_heartbeat_page_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    slot = HeartbeatSlot.create(str(tmp_path), request_limit=3)
    assert os.listdir(tmp_path) == []  # unlinked at once
    r, w = os.pipe()
    beat = WorkerHeartbeat(slot, w)
    assert isinstance(beat, Heartbeat) and isinstance(NullHeartbeat(), Heartbeat)
    reading = slot.read()
    assert reading.ready_at == 0 and reading.request_limit == 3
    time.sleep(0.01)
    beat.notify()
    assert slot.last_notify() > reading.last_notify
    beat.ready()
    beat.ready()  # once
    assert os.read(r, 64) == EVENT_RECORD.pack(os.getpid(), EVENT_READY)
    for duration in (0.001, 0.2, 30.0):
        beat.request_started()
        beat.request_finished(duration)
    reading = slot.read()
    assert (reading.requests, reading.in_flight) == (3, 0)
    assert reading.buckets[0] == 1 and reading.buckets[-1] == 1
    assert len(reading.buckets) == len(DURATION_BUCKETS) + 1
    assert os.read(r, 64) == EVENT_RECORD.pack(os.getpid(), EVENT_LIMIT)
    slot.close()
    beat.notify()  # never raises after close
    os.close(r)
    os.close(w)


def test_hooks_are_called_and_errors_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    seen = []

    def boom(worker: object) -> None:
        raise ValueError("hook bug")

    hooks = Hooks({"post_fork": lambda s, w: seen.append((s, w)), "worker_int": boom,
                   "not_a_hook": print}, __import__("logging").getLogger("tricorn.test"))
    hooks.call("post_fork", 1, 2)
    assert seen == [(1, 2)]
    assert hooks.call("worker_int", None) is None
    assert "not_a_hook" not in hooks and "hook worker_int raised" in caplog.text


def test_context_defaults_sizes_and_gunicorn_names(tmp_path: Path) -> None:
    conf = tmp_path / "g.py"
    conf.write_text("workers = 3\npreload_app = True\npidfile = '/tmp/x.pid'\nproc_name = 'n'\n"
                    "umask = '022'\nmax_requests = 10\ndef post_fork(server, worker): pass\n")
    run_py(f"""
        import os
        import pytest
        import tricorn.arbiter.settings
        from tricorn.arbiter.settings import parse_size
        from tricorn.core.settings import REGISTRY
        from tricorn.core.worker import WorkerContext

        cfg = REGISTRY.make("arbiter", {{"app": "apps:app", "timeout": 8}})
        ctx = WorkerContext(sockets=(), settings=cfg, app_spec="apps:app", app=print)
        assert ctx.notify_interval == 4 and ctx.load_app() is print and ctx.cfg is cfg
        assert ctx.pid == os.getpid() and ctx.parent_alive()

        assert parse_size("512M") == 512 << 20
        assert parse_size("1.5GiB") == 3 << 29
        assert parse_size(1000) == 1000
        with pytest.raises(ValueError):
            parse_size("lots")

        cfg = REGISTRY.load("arbiter", ["-c", {str(conf)!r}, "apps:app"], environ={{}},
                            cwd={str(tmp_path)!r})
        got = (cfg["workers"], cfg["preload"], cfg["pidfile"], cfg["name"], cfg["umask"],
               cfg["max_requests"])
        assert got == (3, True, "/tmp/x.pid", "n", 0o22, 10), got
        assert callable(cfg.extras["post_fork"])
    """)
