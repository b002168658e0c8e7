"""``tricorn-wsgi [OPTIONS] MODULE:APP``: one WSGI process, without the arbiter.

The standalone command is the arbiter-less harness around the same worker classes the arbiter
forks (design §3): it loads the settings (CLI, env, config file, pyproject), sets up logging,
loads the application, binds the listening sockets, and runs `SyncWorker` (``--threads 1``) or
`ThreadWorker` (``--threads N``, N > 1) in this process (the steps shared with ``tricorn-asgi``
are `tricorn.core.standalone`).

Exit codes: 0 after a stop by signal; 2 for bad settings or usage; 3 when the server cannot start
(socket, TLS files, logging); 4 when the application cannot be loaded. A server bound to port 0
logs the address the kernel chose (``Listening at: http://127.0.0.1:PORT``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tricorn.core.apploader import AppLoadError, load_app
from tricorn.core.settings import APP, CHDIR, FACTORY
from tricorn.core.standalone import EXIT_USAGE, StartupFailed, listening, prepare_process, start
from tricorn.core.worker import (
    EXIT_APP_LOAD_ERROR,
    Hooks,
    NullHeartbeat,
    WorkerContext,
    install_process_signals,
)

from . import __version__
from .settings import THREADS

DESCRIPTION = """Serve a WSGI application (PEP 3333) from one process: the sync worker, or the
gthread worker with --threads N > 1."""


class _StandaloneHeartbeat(NullHeartbeat):
    """Nobody watches the heartbeat; readiness runs the post_worker_init hook."""

    __slots__ = ("_on_ready",)

    def __init__(self, on_ready: object) -> None:
        self._on_ready = on_ready

    def ready(self) -> None:
        callback = self._on_ready
        self._on_ready = None
        if callable(callback):
            callback()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg, logs = start("wsgi", argv, prog="tricorn-wsgi", version=__version__,
                          description=DESCRIPTION)
    except StartupFailed as exc:
        return exc.code
    log = logs.error
    try:
        prepare_process(cfg, log)
        spec = cfg[APP]
        if spec is None:  # required: load() already refused; keeps the type checker honest
            print("tricorn-wsgi: error: missing MODULE:APP", file=sys.stderr)
            return EXIT_USAGE
        chdir = cfg[CHDIR]
        try:
            app = load_app(spec, factory=cfg[FACTORY], app_dir=chdir or os.getcwd())
        except AppLoadError as exc:
            log.error("%s", exc, exc_info=exc.__cause__ is not None)
            return EXIT_APP_LOAD_ERROR
        with listening(cfg, log) as (ssl_context, listeners):
            return _run(cfg, spec, app, listeners, ssl_context, logs)
    except StartupFailed as exc:
        return exc.code
    finally:
        logs.close()


def _run(cfg, spec, app, listeners, ssl_context, logs) -> int:  # type: ignore[no-untyped-def]
    from .worker import SyncWorker, ThreadWorker

    log = logs.error
    threads = cfg[THREADS]
    worker_class = ThreadWorker if threads > 1 else SyncWorker
    pid = os.getpid()
    log.info("Starting tricorn-wsgi %s", __version__)
    for listener in listeners:
        log.info("Listening at: %s (%d)", listener.url(ssl_context is not None), pid)
    kind = f"gthread ({threads} threads)" if threads > 1 else "sync"
    log.info("Using worker: %s", kind)
    hooks = Hooks.from_settings(cfg, log)
    context = WorkerContext(
        sockets=tuple(listener.sock for listener in listeners),
        settings=cfg,
        app_spec=spec,
        app=app,
        ppid=0,  # no parent to watch: this process is the server
        logs=logs,
        hooks=hooks,
        ssl_context=ssl_context,
    )
    context.heartbeat = _StandaloneHeartbeat(lambda: hooks.call("post_worker_init", context))
    install_process_signals(context)
    worker = worker_class(context)
    code = worker.run()
    log.info("Shutting down: exit code %d", code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
