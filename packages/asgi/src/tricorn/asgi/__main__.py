"""``tricorn-asgi [OPTIONS] MODULE:APP`` (also ``python -m tricorn.asgi``): one ASGI process.

The arbiter-less harness around the ``asgi`` worker class (worker.py, design §3): read the settings
(CLI, environment, config file, pyproject), set up logging, bind the listening sockets
(`tricorn.core.sockets`), install the process signals (SIGUSR1 reopens the logs), run
`AsgiWorker` in this process, close the sockets. Once serving it logs every address it listens
on, with the port the kernel chose for port 0 (``Listening at: http://127.0.0.1:PORT``).

Exit codes: 0 after a stop by signal (or --limit-max-requests); 2 bad settings or usage; 3 the
server cannot start (socket, TLS files, logging, event loop, lifespan startup); 4 the application
cannot be loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from tricorn.core import settings as core
from tricorn.core.logs import Logs, setup_from_settings
from tricorn.core.settings import Settings, SettingsError
from tricorn.core.sockets import (
    Listener,
    ListenError,
    listeners_from_settings,
    ssl_context_from_settings,
)
from tricorn.core.worker import EXIT_BOOT_ERROR, Hooks, WorkerContext, install_process_signals

from . import __version__
from .settings import REGISTRY  # noqa: F401 - importing registers the settings
from .worker import AsgiWorker, StandaloneHeartbeat

EXIT_USAGE = 2

DESCRIPTION = """Serve an ASGI 3 application (or ASGI 2, or WSGI with --interface wsgi) from one
process, on asyncio or uvloop."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = REGISTRY.build_parser("asgi", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"tricorn-asgi {__version__}")
    try:
        cfg = REGISTRY.load("asgi", argv, parser=parser)
    except SettingsError as exc:
        print(f"tricorn-asgi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        logs = setup_from_settings(cfg, autoflush=False)
    except (OSError, ValueError) as exc:
        print(f"tricorn-asgi: error: cannot set up logging: {exc}", file=sys.stderr)
        return EXIT_BOOT_ERROR
    try:
        return _serve(cfg, logs)
    finally:
        logs.close()


def _serve(cfg: Settings, logs: Logs) -> int:
    log = logs.error
    for warning in cfg.warnings:
        log.warning("%s", warning)
    chdir = cfg[core.CHDIR]
    if chdir is not None:
        os.chdir(chdir)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for key, value in cfg[core.ENV]:
        os.environ[key] = value
    try:
        ssl_context = ssl_context_from_settings(cfg)
    except ValueError as exc:
        log.error("TLS: %s", exc)
        return EXIT_BOOT_ERROR
    try:
        listeners = listeners_from_settings(cfg)
    except ListenError as exc:
        log.error("%s", exc)
        return EXIT_BOOT_ERROR
    try:
        hooks = Hooks.from_settings(cfg, log)
        context = WorkerContext(
            sockets=tuple(listener.sock for listener in listeners),
            settings=cfg,
            app_spec=cfg[core.APP] or "",
            ppid=0,  # no parent to watch: this process is the server
            logs=logs,
            hooks=hooks,
            ssl_context=ssl_context,
        )

        def ready() -> None:
            _announce(logs, listeners, ssl_context is not None)
            hooks.call("post_worker_init", context)

        context.heartbeat = StandaloneHeartbeat(ready)
        install_process_signals(context)
        log.info("Starting tricorn-asgi %s", __version__)
        code = AsgiWorker(context).run()
        log.info("Shutting down: exit code %d", code)
        return code
    finally:
        for listener in listeners:
            listener.close()


def _announce(logs: Logs, listeners: Sequence[Listener], tls: bool) -> None:
    for listener in listeners:
        logs.error.info("Listening at: %s (%d)", listener.url(tls), os.getpid())


if __name__ == "__main__":
    sys.exit(main())
