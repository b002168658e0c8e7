"""tricorn-asgi's own settings, registered into the shared registry (`tricorn.core.settings`).

Core declares what every server shares (bind, limits, header/body-read and write deadlines,
keep-alive, graceful timeout, proxy, TLS, logging); this module adds what only the asyncio server
has. Importing it is cheap (no asyncio, no uvloop), so the arbiter can import it to build its CLI.

Invariants:
- Every limit and deadline the ASGI server enforces is a setting here or in core; none is a
  constant in the protocol code.
- Settings that also make sense for the ``asgi`` worker class under the arbiter are registered for
  both commands; `limit_max_requests` is the standalone spelling of the arbiter's own max-requests.
"""

from __future__ import annotations

from typing import Any

from tricorn.core.settings import (
    REGISTRY,
    TIMEOUT_BODY_READ,  # shared with tricorn-wsgi: declared in core, re-exported for the worker
    TIMEOUT_WRITE,
    Setting,
    Settings,
    one_of,
    optional,
    to_bool,
    to_float,
    to_int,
)

SECTION = "ASGI"
BOTH = frozenset({"asgi", "arbiter"})
ALONE = frozenset({"asgi"})
_MAX_U31 = 2**31 - 1

LOOP: Setting[str] = Setting(
    name="loop",
    section=SECTION,
    convert=one_of("auto", "asyncio", "uvloop"),
    default="auto",
    flags=("--loop",),
    metavar="LOOP",
    commands=BOTH,
    help="""Event loop: auto (uvloop when installed, else asyncio), asyncio or uvloop
    (pip install 'tricorn-asgi[uvloop]').""",
)

LIFESPAN: Setting[str] = Setting(
    name="lifespan",
    section=SECTION,
    convert=one_of("auto", "on", "off"),
    default="auto",
    flags=("--lifespan",),
    metavar="MODE",
    commands=BOTH,
    help="""ASGI lifespan protocol: on (startup must succeed, else exit code 3), off (never sent),
    or auto (on, unless the application does not support it).""",
)

INTERFACE: Setting[str] = Setting(
    name="interface",
    section=SECTION,
    convert=one_of("auto", "asgi3", "asgi2", "wsgi"),
    default="auto",
    flags=("--interface",),
    metavar="INTERFACE",
    commands=BOTH,
    help="""Application interface: asgi3, asgi2 (a class instantiated per scope), wsgi (run in a
    bounded thread pool, see --wsgi-threads), or auto (asgi2 for a class, else asgi3).""",
)

WS: Setting[str] = Setting(
    name="ws",
    section=SECTION,
    convert=one_of("auto", "none"),
    default="auto",
    flags=("--ws",),
    metavar="WS",
    commands=BOTH,
    help="""WebSocket support: auto (the built-in implementation, when present) or none (upgrade
    requests are served as plain HTTP requests).""",
)

WS_MAX_SIZE: Setting[int] = Setting(
    name="ws_max_size",
    section=SECTION,
    convert=to_int(min=1, max=2**40),
    default=16 * 1024 * 1024,
    flags=("--ws-max-size",),
    metavar="BYTES",
    commands=BOTH,
    help="""Largest WebSocket message (all its fragments, and after decompression); checked
    against each frame header before its payload is read. Larger: close 1009.""",
)

WS_MAX_QUEUE: Setting[int] = Setting(
    name="ws_max_queue",
    section=SECTION,
    convert=to_int(min=1, max=_MAX_U31),
    default=32,
    flags=("--ws-max-queue",),
    metavar="INT",
    commands=BOTH,
    help="""Received WebSocket messages waiting for the application's receive(); with more,
    the server stops reading from the client until the application catches up.""",
)

WS_PING_INTERVAL: Setting[float | None] = Setting(
    name="ws_ping_interval",
    section=SECTION,
    convert=optional(to_float(min=0)),
    default=20.0,
    flags=("--ws-ping-interval",),
    metavar="SECONDS",
    commands=BOTH,
    help="Send a WebSocket ping after this much time without one; 0 or none: never.",
)

WS_PING_TIMEOUT: Setting[float | None] = Setting(
    name="ws_ping_timeout",
    section=SECTION,
    convert=optional(to_float(min=0)),
    default=20.0,
    flags=("--ws-ping-timeout",),
    metavar="SECONDS",
    commands=BOTH,
    help="""Close a WebSocket connection whose ping is not answered within this time (also the
    deadline for the closing handshake); 0 or none: wait forever.""",
)

WS_PER_MESSAGE_DEFLATE: Setting[bool] = Setting(
    name="ws_per_message_deflate",
    section=SECTION,
    convert=to_bool,
    default=True,
    action="flag",
    flags=("--ws-per-message-deflate",),
    commands=BOTH,
    help="""Offer permessage-deflate (RFC 7692) compression to WebSocket clients that ask for it
    (--no-ws-per-message-deflate: never).""",
)

WSGI_THREADS: Setting[int] = Setting(
    name="wsgi_threads",
    section=SECTION,
    convert=to_int(min=1, max=4096),
    default=10,
    flags=("--wsgi-threads",),
    metavar="INT",
    commands=BOTH,
    help="""With --interface wsgi: threads running the WSGI application; requests beyond them
    wait in the event loop, not in threads.""",
)

LIMIT_CONCURRENCY: Setting[int | None] = Setting(
    name="limit_concurrency",
    section="Limits",
    convert=optional(to_int(min=1, max=_MAX_U31)),
    default=None,
    flags=("--limit-concurrency",),
    metavar="INT",
    commands=BOTH,
    help="""Most connections (idle keep-alive ones included) and running requests per process;
    a request beyond it is answered 503 at once.""",
)

LIMIT_MAX_REQUESTS: Setting[int] = Setting(
    name="limit_max_requests",
    section="Limits",
    convert=to_int(min=0, max=_MAX_U31),
    default=0,
    flags=("--limit-max-requests", "--max-requests"),
    metavar="INT",
    commands=ALONE,
    help="""Stop gracefully after this many requests (plus a random jitter), so a supervisor
    starts a fresh process; 0 = never.""",
)

LIMIT_MAX_REQUESTS_JITTER: Setting[int] = Setting(
    name="limit_max_requests_jitter",
    section="Limits",
    convert=to_int(min=0, max=_MAX_U31),
    default=0,
    flags=("--limit-max-requests-jitter", "--max-requests-jitter"),
    metavar="INT",
    commands=ALONE,
    help="Add a random 0..N to --limit-max-requests, so processes do not all stop together.",
)

READ_BUFFER_SIZE: Setting[int] = Setting(
    name="read_buffer_size",
    section="Limits",
    convert=to_int(min=1024, max=_MAX_U31),
    default=65536,
    flags=("--read-buffer-size",),
    metavar="BYTES",
    commands=BOTH,
    help="""Request body bytes buffered for an application that has not read them yet; above
    it the server stops reading from the socket (flow control) until the application reads.""",
)

WRITE_BUFFER_SIZE: Setting[int] = Setting(
    name="write_buffer_size",
    section="Limits",
    convert=to_int(min=1024, max=_MAX_U31),
    default=65536,
    flags=("--write-buffer-size",),
    metavar="BYTES",
    commands=BOTH,
    help="""Response bytes buffered for a client that reads slowly; above it the application's
    send() waits until the client has taken some.""",
)

TIMEOUT_LINGER: Setting[float] = Setting(
    name="timeout_linger",
    section="Timeouts",
    convert=to_float(min=0),
    default=2.0,
    flags=("--timeout-linger",),
    metavar="SECONDS",
    commands=BOTH,
    help="""After an error response (or a response that left request body unread): how long
    the server half-closes and discards input, so the client reads the response before the close.""",
)

TIMEOUT_LIFESPAN: Setting[float] = Setting(
    name="timeout_lifespan",
    section="Timeouts",
    convert=to_float(min=0),
    default=60.0,
    flags=("--timeout-lifespan",),
    metavar="SECONDS",
    commands=BOTH,
    help="""How long lifespan startup and shutdown may each take; a startup that runs out of
    time is a failed startup (exit code 3). 0 = no limit.""",
)

ASGI_SETTINGS: tuple[Setting[Any], ...] = (
    LOOP,
    LIFESPAN,
    INTERFACE,
    WS,
    WS_MAX_SIZE,
    WS_MAX_QUEUE,
    WS_PING_INTERVAL,
    WS_PING_TIMEOUT,
    WS_PER_MESSAGE_DEFLATE,
    WSGI_THREADS,
    LIMIT_CONCURRENCY,
    LIMIT_MAX_REQUESTS,
    LIMIT_MAX_REQUESTS_JITTER,
    READ_BUFFER_SIZE,
    WRITE_BUFFER_SIZE,
    TIMEOUT_LINGER,
    TIMEOUT_LIFESPAN,
)

REGISTRY.register(*ASGI_SETTINGS)


def get(cfg: Settings, setting: Setting[Any], default: object = None) -> Any:
    """`cfg[setting]`, or `default` when `cfg` was loaded for a command without it (e.g. the
    arbiter's settings before this module was imported)."""
    return cfg.data.get(setting.name, default if default is not None else setting.default)


__all__ = [
    "ASGI_SETTINGS", "REGISTRY", "INTERFACE", "LIFESPAN", "LIMIT_CONCURRENCY", "LIMIT_MAX_REQUESTS",
    "LIMIT_MAX_REQUESTS_JITTER", "LOOP", "READ_BUFFER_SIZE", "TIMEOUT_BODY_READ", "TIMEOUT_LIFESPAN",
    "TIMEOUT_LINGER", "TIMEOUT_WRITE", "WRITE_BUFFER_SIZE", "WS", "WS_MAX_QUEUE", "WS_MAX_SIZE",
    "WS_PER_MESSAGE_DEFLATE", "WS_PING_INTERVAL", "WS_PING_TIMEOUT", "WSGI_THREADS", "get",
]
