"""``tricorn-asgi [OPTIONS] MODULE:APP`` (also ``python -m tricorn.asgi``): one ASGI process.

The arbiter-less harness around the ``asgi`` worker class (worker.py, design §3): read the settings
(CLI, environment, config file, pyproject), set up logging, bind the listening sockets
(`tricorn.core.sockets`), install the process signals (SIGUSR1 reopens the logs), run
`AsgiWorker` in this process, close the sockets (the steps shared with ``tricorn-wsgi`` are
`tricorn.core.standalone`). Once serving it logs every address it listens
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
from tricorn.core.logs import Logs
from tricorn.core.settings import Settings
from tricorn.core.sockets import Listener
from tricorn.core.standalone import StartupFailed, listening, prepare_process, start
from tricorn.core.worker import Hooks, WorkerContext, install_process_signals

from . import __version__
from .settings import REGISTRY  # noqa: F401 - importing registers the settings
from .worker import AsgiWorker, StandaloneHeartbeat

DESCRIPTION = """Serve an ASGI 3 application (or ASGI 2, or WSGI with --interface wsgi) from one
process, on asyncio or uvloop."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg, logs = start("asgi", argv, prog="tricorn-asgi", version=__version__,
                          description=DESCRIPTION, autoflush=False)
    except StartupFailed as exc:
        return exc.code
    try:
        return _serve(cfg, logs)
    except StartupFailed as exc:
        return exc.code
    finally:
        logs.close()


def _serve(cfg: Settings, logs: Logs) -> int:
    log = logs.error
    prepare_process(cfg, log)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    with listening(cfg, log) as (ssl_context, listeners):
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


def _announce(logs: Logs, listeners: Sequence[Listener], tls: bool) -> None:
    for listener in listeners:
        logs.error.info("Listening at: %s (%d)", listener.url(tls), os.getpid())


if __name__ == "__main__":
    sys.exit(main())
