"""tricorn-wsgi's own settings, registered into the shared registry on import.

The shared ones (bind, limits, keep_alive, graceful_timeout, timeout_header_read, proxies, TLS,
logging...) are core's (`tricorn.core.settings.CORE_SETTINGS`); these are the WSGI workers'. They
apply to the standalone command (``wsgi``) and to the arbiter (``arbiter``), which runs the same
worker classes.

Invariant: importing this module registers every setting below into `tricorn.core.settings.REGISTRY`
exactly once (registering is idempotent), and nothing else.
"""

from __future__ import annotations

from typing import Any

from tricorn.core.settings import REGISTRY, Setting, one_of, to_bool, to_int

__all__ = [
    "HEADER_MAP",
    "SENDFILE",
    "THREADS",
    "WORKER_CONNECTIONS",
    "WSGI_SETTINGS",
]

_COMMANDS = frozenset({"wsgi", "arbiter"})

THREADS: Setting[int] = Setting(
    name="threads",
    section="Processes",
    convert=to_int(min=1, max=4096),
    default=1,
    flags=("--threads",),
    metavar="INT",
    commands=_COMMANDS,
    help="""Threads per worker process. 1 runs the sync worker (one request at a time, no
    keep-alive); more runs the gthread worker (a pool of threads sharing one poller, keep-alive).""",
)

WORKER_CONNECTIONS: Setting[int] = Setting(
    name="worker_connections",
    section="Processes",
    convert=to_int(min=1, max=1_000_000),
    default=1000,
    flags=("--worker-connections",),
    metavar="INT",
    commands=_COMMANDS,
    help="""gthread: most connections one worker keeps open (busy and idle keep-alive). At the limit
    it stops accepting; new connections wait in the listen backlog.""",
)

HEADER_MAP: Setting[str] = Setting(
    name="header_map",
    section="HTTP",
    convert=one_of("drop", "refuse", "dangerous"),
    default="drop",
    flags=("--header-map",),
    metavar="MODE",
    commands=_COMMANDS,
    help="""Request header names containing '_' would collide with '-' names in the WSGI environ
    (both become HTTP_X_Y): drop them (Gunicorn's default), refuse the request with 400, or pass
    them on (dangerous: a client can then spoof a header a proxy set).""",
)

SENDFILE: Setting[bool] = Setting(
    name="sendfile",
    section="HTTP",
    convert=to_bool,
    default=True,
    action="flag",
    flags=("--sendfile",),
    commands=_COMMANDS,
    help="""Send wsgi.file_wrapper responses of regular files with os.sendfile() (plain TCP and
    Unix sockets; TLS always copies). --no-sendfile is Gunicorn's spelling to turn it off.""",
)

WSGI_SETTINGS: tuple[Setting[Any], ...] = (
    THREADS,
    WORKER_CONNECTIONS,
    HEADER_MAP,
    SENDFILE,
)

REGISTRY.register(*WSGI_SETTINGS)
