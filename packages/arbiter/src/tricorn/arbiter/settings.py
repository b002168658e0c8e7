"""The arbiter's own settings (``tricorn`` command), registered into the shared registry on import.

Core declares what every server shares (bind, limits, graceful_timeout, logging...); the server
packages declare their worker settings (``--threads``, ``--loop``...) for the ``arbiter`` command
too. This module adds the process manager's: workers, worker class, heartbeat timeout, recycling
limits, preload, hooks' companions (pidfile, user/group, daemon...), the status listener and the
control socket. Names and flags follow Gunicorn's, so a ``gunicorn.conf.py`` loads unchanged.

Invariants:
- Importing this module registers `ARBITER_SETTINGS` into `tricorn.core.settings.REGISTRY` exactly
  once (registering is idempotent), imports nothing heavy, and has no other side effect.
- Every limit and deadline the arbiter enforces is one of these settings (or core's
  ``graceful_timeout``); none is a constant in the loop.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from collections.abc import Mapping
from typing import Any

from tricorn.core.settings import (
    REGISTRY,
    Setting,
    Settings,
    Switch,
    optional,
    parse_bind,
    to_bool,
    to_float,
    to_int,
    to_str,
)

__all__ = [
    "ARBITER_SETTINGS",
    "ABORT_TIMEOUT",
    "BOOT_FAILURE_LIMIT",
    "CHECK_CONFIG",
    "CONTROL_SOCKET",
    "DAEMON",
    "GROUP",
    "MAX_REQUESTS",
    "MAX_REQUESTS_JITTER",
    "MAX_WORKER_LIFETIME",
    "MAX_WORKER_LIFETIME_JITTER",
    "MAX_WORKER_MEMORY",
    "MEMORY_CHECK_INTERVAL",
    "NAME",
    "PIDFILE",
    "PRELOAD",
    "PRINT_CONFIG",
    "QUICK_TIMEOUT",
    "RELOAD",
    "RELOAD_INTERVAL",
    "RESPAWN_BACKOFF_MAX",
    "RESPAWN_BACKOFF_UPTIME",
    "ROLLING_SURGE",
    "STATUS_BIND",
    "TIMEOUT",
    "UMASK",
    "USER",
    "WORKERS",
    "WORKER_CLASS",
    "WORKER_TMP_DIR",
    "parse_size",
]

ARBITER = frozenset({"arbiter"})
_MAX_U31 = 2**31 - 1


def _default_workers(environ: Mapping[str, str]) -> int:
    raw = environ.get("WEB_CONCURRENCY", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: object) -> int:
    """Bytes from an int, or text like ``512M``, ``1.5GiB``, ``200000000`` (binary multiples)."""
    if isinstance(value, bool):
        raise TypeError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match is None:
            raise ValueError(f"expected a size like 512M or 2G, got {value!r}")
        number = int(float(match[1]) * _UNITS[match[2].lower()])
    else:
        raise TypeError(f"expected a size, got {value!r}")
    if number < 0:
        raise ValueError(f"must be at least 0, got {number}")
    return number


def _umask(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected a umask, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            number = int(text, 0) if text.startswith("0x") else int(text.removeprefix("0o"), 8)
        except ValueError:
            raise ValueError(f"expected an octal umask like 022, got {value!r}") from None
    else:
        raise TypeError(f"expected a umask, got {value!r}")
    if not 0 <= number <= 0o777:
        raise ValueError(f"umask must be from 0 to 0o777, got {oct(number)}")
    return number


def _user(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = to_str(value)
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise ValueError(f"no such user {text!r}") from None


def _group(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = to_str(value)
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"no such group {text!r}") from None


def _tcp_bind(value: object) -> str:
    text = to_str(value)
    address = parse_bind(text)
    if address.kind != "tcp":
        raise ValueError(f"the status listener needs HOST:PORT, got {text!r}")
    return text


def _existing_dir(value: object) -> str:
    path = os.path.abspath(to_str(value))
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a directory")
    return path


WORKERS: Setting[int] = Setting(
    name="workers",
    section="Processes",
    convert=to_int(min=0, max=4096),
    default=1,
    default_factory=_default_workers,
    default_doc="`$WEB_CONCURRENCY` if set, else `1`",
    flags=("-w", "--workers"),
    metavar="INT",
    commands=ARBITER,
    help="""Worker processes to run. Change at run time with SIGTTIN/SIGTTOU or tricornctl.""",
)

WORKER_CLASS: Setting[str] = Setting(
    name="worker_class",
    section="Processes",
    convert=to_str,
    default="sync",
    flags=("-k", "--worker-class"),
    metavar="CLASS",
    commands=ARBITER,
    help="""The worker class: sync, gthread (tricorn-wsgi), asgi (tricorn-asgi), or an import
    string package.module:Class. sync with --threads above 1 is gthread.""",
)

TIMEOUT: Setting[float] = Setting(
    name="timeout",
    section="Timeouts",
    convert=to_float(min=0),
    default=30.0,
    flags=("-t", "--timeout"),
    metavar="SECONDS",
    commands=ARBITER,
    help="""Heartbeat timeout: a worker that has not notified the master for this long (booting
    included) is sent SIGABRT (its stack is dumped to the error log), then SIGKILL, and replaced.
    Workers notify from the thread/loop that does the work, so for sync this bounds a request;
    for gthread and asgi it bounds a blocked loop. 0 = off.""",
)

ABORT_TIMEOUT: Setting[float] = Setting(
    name="abort_timeout",
    section="Timeouts",
    convert=to_float(min=0.01),
    default=2.0,
    flags=("--abort-timeout",),
    metavar="SECONDS",
    commands=ARBITER,
    help="""After SIGABRT for a heartbeat timeout: how long the worker has to dump its stack and
    exit before it is sent SIGKILL.""",
)

QUICK_TIMEOUT: Setting[float] = Setting(
    name="quick_timeout",
    section="Timeouts",
    convert=to_float(min=0.01),
    default=2.0,
    flags=("--quick-timeout",),
    metavar="SECONDS",
    commands=ARBITER,
    help="""On a quick stop (SIGINT/SIGQUIT, also when it follows a SIGTERM): how long workers have
    to exit before they are sent SIGKILL.""",
)

MAX_REQUESTS: Setting[int] = Setting(
    name="max_requests",
    section="Processes",
    convert=to_int(min=0, max=2**62),
    default=0,
    flags=("--max-requests",),
    metavar="INT",
    commands=ARBITER,
    help="""Recycle a worker after this many requests (plus jitter): a replacement is started,
    and the old worker is stopped gracefully once the replacement is ready. 0 = never.""",
)

MAX_REQUESTS_JITTER: Setting[int] = Setting(
    name="max_requests_jitter",
    section="Processes",
    convert=to_int(min=0, max=2**62),
    default=0,
    flags=("--max-requests-jitter",),
    metavar="INT",
    commands=ARBITER,
    help="Add a random 0..N to --max-requests per worker, so workers are not recycled together.",
)

MAX_WORKER_MEMORY: Setting[int] = Setting(
    name="max_worker_memory",
    section="Processes",
    convert=parse_size,
    default=0,
    flags=("--max-worker-memory",),
    metavar="SIZE",
    commands=ARBITER,
    help="""Recycle a worker whose resident memory (RSS) exceeds this (bytes, or 512M, 2G...), the
    same graceful way as --max-requests. Checked every --memory-check-interval. 0 = no limit.""",
)

MEMORY_CHECK_INTERVAL: Setting[float] = Setting(
    name="memory_check_interval",
    section="Processes",
    convert=to_float(min=0.05),
    default=5.0,
    flags=("--memory-check-interval",),
    metavar="SECONDS",
    commands=ARBITER,
    help="How often the master reads each worker's RSS (for --max-worker-memory and /metrics).",
)

MAX_WORKER_LIFETIME: Setting[float] = Setting(
    name="max_worker_lifetime",
    section="Processes",
    convert=to_float(min=0),
    default=0.0,
    flags=("--max-worker-lifetime",),
    metavar="SECONDS",
    commands=ARBITER,
    help="""Recycle a worker this long after it became ready (plus jitter), the same graceful way
    as --max-requests. 0 = never.""",
)

MAX_WORKER_LIFETIME_JITTER: Setting[float] = Setting(
    name="max_worker_lifetime_jitter",
    section="Processes",
    convert=to_float(min=0),
    default=0.0,
    flags=("--max-worker-lifetime-jitter",),
    metavar="SECONDS",
    commands=ARBITER,
    help="Add a random 0..N seconds to --max-worker-lifetime per worker.",
)

ROLLING_SURGE: Setting[int] = Setting(
    name="rolling_surge",
    section="Processes",
    convert=to_int(min=1, max=4096),
    default=1,
    flags=("--rolling-surge",),
    metavar="INT",
    commands=ARBITER,
    help="""On a rolling reload (SIGHUP) or recycling: how many replacement workers may boot at
    once. Each old worker is stopped only after a replacement is ready.""",
)

BOOT_FAILURE_LIMIT: Setting[int] = Setting(
    name="boot_failure_limit",
    section="Processes",
    convert=to_int(min=1, max=_MAX_U31),
    default=3,
    flags=("--boot-failure-limit",),
    metavar="INT",
    commands=ARBITER,
    help="""Stop the master (exit 3) after this many workers in a row died before becoming ready
    (killed by a signal during boot, or exited early), instead of restarting them forever.""",
)

RESPAWN_BACKOFF_MAX: Setting[float] = Setting(
    name="respawn_backoff_max",
    section="Processes",
    convert=to_float(min=0),
    default=10.0,
    flags=("--respawn-backoff-max",),
    metavar="SECONDS",
    commands=ARBITER,
    help="""A worker that crashes after becoming ready is replaced at once; when workers keep
    dying young (see --respawn-backoff-uptime, within twice this time of each other), each
    replacement waits twice as long as the last, from 0.1 s up to this.""",
)

RESPAWN_BACKOFF_UPTIME: Setting[float] = Setting(
    name="respawn_backoff_uptime",
    section="Processes",
    convert=to_float(min=0),
    default=1.0,
    flags=("--respawn-backoff-uptime",),
    metavar="SECONDS",
    commands=ARBITER,
    help="""A worker that crashes after serving at least this long is replaced at once and ends
    any back-off; only workers dying younger count as a crash loop.""",
)

PRELOAD: Setting[bool] = Setting(
    name="preload",
    section="Application",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--preload",),
    aliases=("preload_app",),
    commands=ARBITER,
    help="""Import the application in the master before forking (shared copy-on-write memory; an
    import error stops the start at once). A reload (SIGHUP) re-imports it in the master.""",
)

RELOAD: Setting[bool] = Setting(
    name="reload",
    section="Application",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--reload",),
    commands=ARBITER,
    help="""Development: each worker watches the source files of its loaded modules and exits
    when one changes; the master replaces it. Not for production (use SIGHUP).""",
)

RELOAD_INTERVAL: Setting[float] = Setting(
    name="reload_interval",
    section="Application",
    convert=to_float(min=0.05),
    default=1.0,
    flags=("--reload-interval",),
    metavar="SECONDS",
    commands=ARBITER,
    help="How often --reload checks the source files for changes.",
)

PIDFILE: Setting[str | None] = Setting(
    name="pidfile",
    section="Processes",
    convert=optional(to_str),
    default=None,
    flags=("-p", "--pid"),
    metavar="FILE",
    aliases=("pid",),
    commands=ARBITER,
    help="""Write the master's pid to this file (removed at exit). A new master started by SIGUSR2
    writes FILE.2 and renames it to FILE when the old master exits.""",
)

USER: Setting[int | None] = Setting(
    name="user",
    section="Processes",
    convert=optional(_user),
    default=None,
    flags=("-u", "--user"),
    metavar="USER",
    commands=ARBITER,
    help="Workers run as this user (name or uid); the master binds first, as it was started.",
)

GROUP: Setting[int | None] = Setting(
    name="group",
    section="Processes",
    convert=optional(_group),
    default=None,
    flags=("-g", "--group"),
    metavar="GROUP",
    commands=ARBITER,
    help="Workers run as this group (name or gid).",
)

UMASK: Setting[int] = Setting(
    name="umask",
    section="Processes",
    convert=_umask,
    default=0,
    default_doc="`0` (the umask is left as it is)",
    flags=("-m", "--umask"),
    metavar="INT",
    commands=ARBITER,
    help="The file mode creation mask of the master and workers (octal, e.g. 022); 0 = unchanged.",
)

DAEMON: Setting[bool] = Setting(
    name="daemon",
    section="Processes",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--daemon",),
    switches=(Switch("-D", True, "same as --daemon"),),
    commands=ARBITER,
    help="Detach from the terminal and run in the background (use --pid and a log file).",
)

WORKER_TMP_DIR: Setting[str | None] = Setting(
    name="worker_tmp_dir",
    section="Processes",
    convert=optional(_existing_dir),
    default=None,
    default_doc="`/dev/shm` if writable, else the system temp dir",
    flags=("--worker-tmp-dir",),
    metavar="DIR",
    commands=ARBITER,
    help="""Where the workers' heartbeat pages are created (unlinked at once). Keep it on a memory
    file system.""",
)

NAME: Setting[str | None] = Setting(
    name="name",
    section="Processes",
    convert=optional(to_str),
    default=None,
    flags=("-n", "--name"),
    metavar="STRING",
    aliases=("proc_name",),
    commands=ARBITER,
    help="""A name for the process titles ("tricorn: master [NAME]"); titles are set when
    setproctitle is installed.""",
)

STATUS_BIND: Setting[str | None] = Setting(
    name="status_bind",
    section="Processes",
    convert=optional(_tcp_bind),
    default=None,
    flags=("--status-bind",),
    metavar="ADDRESS",
    commands=ARBITER,
    help="""Serve /livez, /readyz and /metrics (Prometheus text) from the master on this HOST:PORT
    (separate from the application's sockets). Off by default.""",
)

CONTROL_SOCKET: Setting[str | None] = Setting(
    name="control_socket",
    section="Processes",
    convert=optional(to_str),
    default=None,
    flags=("--control-socket",),
    metavar="PATH",
    commands=ARBITER,
    help="""A Unix socket (mode 0600) for tricornctl: show workers, stats and config; add or
    remove workers; reload; reopen logs; shut down. Off by default.""",
)

CHECK_CONFIG: Setting[bool] = Setting(
    name="check_config",
    section="Config",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--check-config",),
    commands=ARBITER,
    help="Load the settings, the worker class and the application, report, and exit (0 = ok).",
)

PRINT_CONFIG: Setting[bool] = Setting(
    name="print_config",
    section="Config",
    convert=to_bool,
    default=False,
    action="flag",
    flags=("--print-config",),
    commands=ARBITER,
    help="Print every setting with its value and where it came from, and exit.",
)

ARBITER_SETTINGS: tuple[Setting[Any], ...] = (
    WORKERS,
    WORKER_CLASS,
    TIMEOUT,
    ABORT_TIMEOUT,
    QUICK_TIMEOUT,
    MAX_REQUESTS,
    MAX_REQUESTS_JITTER,
    MAX_WORKER_MEMORY,
    MEMORY_CHECK_INTERVAL,
    MAX_WORKER_LIFETIME,
    MAX_WORKER_LIFETIME_JITTER,
    ROLLING_SURGE,
    BOOT_FAILURE_LIMIT,
    RESPAWN_BACKOFF_MAX,
    RESPAWN_BACKOFF_UPTIME,
    PRELOAD,
    RELOAD,
    RELOAD_INTERVAL,
    PIDFILE,
    USER,
    GROUP,
    UMASK,
    DAEMON,
    WORKER_TMP_DIR,
    NAME,
    STATUS_BIND,
    CONTROL_SOCKET,
    CHECK_CONFIG,
    PRINT_CONFIG,
)

REGISTRY.register(*ARBITER_SETTINGS)


def worker_threads(cfg: Settings) -> int:
    """``--threads`` when a server package registered it for this command, else 1."""
    value = cfg.data.get("threads", 1)
    return value if isinstance(value, int) else 1
