"""The worker contract: what a process manager hands a worker class, and what it expects back.

A *worker class* serves HTTP on already-listening sockets in one process. The arbiter
(``tricorn -k NAME``) forks it; a server's standalone command (``tricorn-wsgi``) runs the same class
in its own process. Neither side imports the other: both depend on this module only.

The contract::

    cls = resolve_worker_class("sync")          # short name or "package.module:Class"
    worker = cls(context)                       # cheap; may raise -> exit code EXIT_BOOT_ERROR
    code = worker.run()                         # blocks until stopped; returns an exit code

`WorkerContext` carries the listening sockets, the loaded `Settings`, the app (an import string, or
the object the master preloaded), a `Heartbeat`, the parent's pid, the logs and the config-file
hooks.

Invariants a worker class keeps:
- It calls ``context.heartbeat.notify()`` from the thread or event loop that does the work (never
  from a helper thread that stays alive while the work is stuck), at least every
  ``context.notify_interval`` seconds (``timeout / 2``), idle or busy. A worker that stays silent
  for ``timeout`` seconds is sent SIGABRT, then SIGKILL.
- It calls ``context.heartbeat.ready()`` once, when the app is loaded and it accepts connections.
  Until then it is *booting*: a failure before ready is a boot failure, which stops the arbiter
  instead of restarting forever. It calls `request_started` / `request_finished` around each
  request (they feed --max-requests and the metrics; they never block).
- Signals: SIGTERM stops gracefully (stop accepting, finish in-flight requests within
  ``graceful_timeout``, close idle keep-alive connections, then return). `RETIRE_SIGNAL` (SIGHUP)
  retires: the arbiter sends it when other workers go on serving the same listeners (rolling
  reload, recycling, fewer workers). It is a graceful stop that leaves idle keep-alive
  connections open, because their clients may be sending a request on them at this very moment:
  each is served its next request (answered with ``Connection: close``) or closes at its
  keep-alive deadline, all within ``graceful_timeout``. SIGQUIT and SIGINT stop quickly (call the
  ``worker_int`` hook via ``context.hooks``, close everything, return). The worker installs these
  four itself, with its loop's own mechanism, inside `run`.
  SIGUSR1 (reopen log files) and SIGABRT (dump every thread's stack to the error log, call the
  ``worker_abort`` hook, exit with `EXIT_ABORTED`) are installed by the harness before `run` with
  `install_process_signals`; a worker class need not touch them. The harness also maps
  `RETIRE_SIGNAL` to SIGTERM until the worker installs its own handler, so a worker class that
  keeps no idle connections may ignore the difference.
- Exit codes: `run` returns `EXIT_OK` after a normal stop. A worker that cannot start returns (or
  the harness maps an exception to) `EXIT_BOOT_ERROR` (3); an app that cannot be imported gives
  `EXIT_APP_LOAD_ERROR` (4, `AppLoadError.exit_code`). `context.load_app()` raises `AppLoadError`,
  which the harness turns into 4.
- The listening sockets are shared with sibling processes: a worker never closes or unlinks them
  except on its own exit, and never calls ``listen()`` on them again.

Worker classes by short name live in `WORKER_CLASSES`; a class is imported only when resolved, so
the arbiter installs without the servers and the servers without the arbiter.
"""

from __future__ import annotations

import faulthandler
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from .apploader import AppLoadError, load_app
from .logs import is_json_handler

if TYPE_CHECKING:
    from .logs import Logs
    from .settings import Settings

__all__ = [
    "EXIT_ABORTED",
    "EXIT_APP_LOAD_ERROR",
    "EXIT_BOOT_ERROR",
    "EXIT_OK",
    "HOOK_NAMES",
    "WORKER_CLASSES",
    "Heartbeat",
    "Hooks",
    "NullHeartbeat",
    "RETIRE_SIGNAL",
    "Worker",
    "WorkerClassError",
    "WorkerContext",
    "install_process_signals",
    "resolve_worker_class",
]

EXIT_OK: Final = 0
EXIT_ABORTED: Final = 1
"""After SIGABRT (the arbiter's heartbeat timeout): the stack was dumped, the worker gave up."""
EXIT_BOOT_ERROR: Final = 3
"""The worker could not start (bad settings, socket trouble, lifespan startup failed...)."""
EXIT_APP_LOAD_ERROR: Final = AppLoadError.exit_code
"""The application could not be imported or built (4)."""

RETIRE_SIGNAL: Final = signal.SIGHUP
"""Retire: a graceful stop that drains idle keep-alive connections instead of closing them."""

WORKER_CLASSES: Mapping[str, str] = MappingProxyType(
    {
        "sync": "tricorn.wsgi.worker:SyncWorker",
        "gthread": "tricorn.wsgi.worker:ThreadWorker",
        "asgi": "tricorn.asgi.worker:AsgiWorker",
    }
)
"""Short names of the worker classes the server packages provide."""

_PACKAGE_OF = {"tricorn.wsgi": "tricorn-wsgi", "tricorn.asgi": "tricorn-asgi"}

HOOK_NAMES: frozenset[str] = frozenset(
    """on_starting on_reload when_ready pre_fork post_fork post_worker_init worker_int worker_abort
    pre_exec pre_request post_request child_exit worker_exit nworkers_changed on_exit""".split()
)
"""Gunicorn's server hooks, read from the config file (``Settings.extras``)."""


# --------------------------------------------------------------------------------------------------
# Heartbeat


@runtime_checkable
class Heartbeat(Protocol):
    """The worker's side of the liveness and readiness channel. Every method is cheap (no syscall
    in `notify` and the request counters) and never raises."""

    def notify(self) -> None:
        """I am alive: call from the working thread/loop at least every ``timeout / 2`` s."""

    def ready(self) -> None:
        """The app is loaded and the sockets are being accepted on. Call once."""

    def request_started(self) -> None:
        """A request was read and handed to the app."""

    def request_finished(self, duration: float) -> None:
        """That request's response is complete (or failed); `duration` in seconds."""


class NullHeartbeat:
    """A heartbeat nobody watches (standalone servers, tests)."""

    __slots__ = ()

    def notify(self) -> None:
        pass

    def ready(self) -> None:
        pass

    def request_started(self) -> None:
        pass

    def request_finished(self, duration: float) -> None:
        pass


# --------------------------------------------------------------------------------------------------
# Hooks


class Hooks:
    """Config-file hooks by name (Gunicorn's names and signatures). `call` runs one if it is
    defined, logs (never raises) an exception from it, and returns its result or None."""

    __slots__ = ("_hooks", "_log")

    def __init__(self, extras: Mapping[str, object], log: logging.Logger) -> None:
        self._hooks: dict[str, Callable[..., object]] = {}
        for name, hook in extras.items():
            if name in HOOK_NAMES and callable(hook):
                self._hooks[name] = hook
        self._log = log

    @classmethod
    def from_settings(cls, settings: Settings, log: logging.Logger | None = None) -> Hooks:
        return cls(settings.extras, log or logging.getLogger("tricorn.error"))

    def __contains__(self, name: object) -> bool:
        return name in self._hooks

    def get(self, name: str) -> Callable[..., object] | None:
        return self._hooks.get(name)

    def call(self, name: str, *args: object) -> object:
        hook = self.get(name)
        if hook is None:
            return None
        try:
            return hook(*args)
        except Exception:
            self._log.exception("hook %s raised", name)
            return None


# --------------------------------------------------------------------------------------------------
# The context and the worker


@dataclass(eq=False)
class WorkerContext:
    """Everything a worker process gets. Hooks receive it as their ``worker`` argument, so it has
    Gunicorn's worker attributes too (`pid`, `ppid`, `age`, `log`, `cfg`)."""

    sockets: tuple[socket.socket, ...]
    """Listening sockets, shared with the sibling workers (non-blocking; do not close them)."""
    settings: Settings
    app_spec: str
    """The ``MODULE:APP`` string (for messages, and for `load_app` when nothing was preloaded)."""
    heartbeat: Heartbeat = field(default_factory=NullHeartbeat)
    app: object | None = None
    """The application object when the master preloaded it (--preload), else None."""
    ppid: int = field(default_factory=os.getppid)
    """The parent's pid at fork time: when ``os.getppid()`` differs, the parent is gone."""
    logs: Logs | None = None
    """The error and access logs (`Logs.reopen` on SIGUSR1); None only in unit tests."""
    hooks: Hooks = field(default_factory=lambda: Hooks({}, logging.getLogger("tricorn.error")))
    age: int = 0
    """A number that grows with each worker the master starts (Gunicorn's ``worker.age``)."""
    ssl_context: Any = None
    """An `ssl.SSLContext` when TLS is on (built by the master, shared), else None."""

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def log(self) -> logging.Logger:
        return self.logs.error if self.logs is not None else logging.getLogger("tricorn.error")

    @property
    def cfg(self) -> Settings:
        """Gunicorn's name for the settings (for config-file hooks)."""
        return self.settings

    @property
    def timeout(self) -> float:
        value = self.settings.data.get("timeout", 0.0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    @property
    def notify_interval(self) -> float:
        """How often to call ``heartbeat.notify()`` at the latest (1 s when no timeout is set)."""
        timeout = self.timeout
        return timeout / 2 if timeout > 0 else 1.0

    @property
    def graceful_timeout(self) -> float:
        value = self.settings.data.get("graceful_timeout", 30.0)
        return float(value) if isinstance(value, (int, float)) else 30.0

    def parent_alive(self) -> bool:
        return os.getppid() == self.ppid

    def load_app(self) -> object:
        """The preloaded app, else import it per the settings (factory, chdir). Raises
        `AppLoadError`."""
        if self.app is not None:
            return self.app
        factory = bool(self.settings.data.get("factory", False))
        chdir = self.settings.data.get("chdir")
        return load_app(
            self.app_spec, factory=factory, app_dir=chdir if isinstance(chdir, str) else os.getcwd()
        )


@runtime_checkable
class Worker(Protocol):
    """A worker class: ``cls(context).run() -> exit code`` (see the module docstring)."""

    def __init__(self, context: WorkerContext) -> None: ...

    def run(self) -> int: ...


class WorkerClassError(Exception):
    """A worker class name could not be resolved; `str(exc)` says why (and what to install)."""


def resolve_worker_class(name: str, *, threads: int = 1) -> type[Worker]:
    """The class for a short name (`WORKER_CLASSES`) or a ``package.module:Class`` import string.

    Gunicorn's rule: ``sync`` with ``threads > 1`` is ``gthread``. Imports the module (only now).
    Raises `WorkerClassError`.
    """
    key = name.strip()
    if key == "sync" and threads > 1:
        key = "gthread"
    target = WORKER_CLASSES.get(key.lower(), key)
    module_name, colon, attr = target.partition(":")
    if not colon:
        module_name, _, attr = target.rpartition(".")  # Gunicorn accepts "pkg.module.Class"
    if not module_name or not attr:
        known = ", ".join(WORKER_CLASSES)
        raise WorkerClassError(
            f"unknown worker class {name!r}: use one of {known} or an import string "
            "package.module:Class"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        hint = ""
        for prefix, dist in _PACKAGE_OF.items():
            if module_name.startswith(prefix) and missing.startswith(prefix):
                hint = f"; install {dist} (pip install 'tricorn-arbiter[{prefix[8:]}]')"
        raise WorkerClassError(
            f"worker class {name!r}: module {missing!r} not found{hint}"
        ) from exc
    except Exception as exc:
        raise WorkerClassError(
            f"worker class {name!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    obj: object = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise WorkerClassError(f"worker class {name!r}: {module_name!r} has no {attr!r}")
    if not isinstance(obj, type) or not callable(getattr(obj, "run", None)):
        raise WorkerClassError(f"worker class {name!r}: {target!r} is not a class with run()")
    return obj


# --------------------------------------------------------------------------------------------------
# Process-level signals shared by every worker class


def _log_fd(context: WorkerContext) -> int:
    """The file descriptor of the error log (stderr if it is not a file we can find, or if the
    error log is JSON: a raw stack dump would break its lines)."""
    if context.logs is not None and not is_json_handler(context.logs.handler):
        stream = getattr(context.logs.handler, "stream", None)
        try:
            if stream is not None:
                return int(stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    return sys.stderr.fileno() if sys.stderr is not None else 2


def install_process_signals(context: WorkerContext) -> None:
    """Install SIGUSR1 (reopen logs) and SIGABRT (dump stacks, ``worker_abort`` hook, exit 1), and
    a fallback for `RETIRE_SIGNAL` that turns it into SIGTERM, so a worker class that installs no
    handler of its own for it stops gracefully instead of dying of the default action.

    Call from the main thread before ``worker.run()``. The stack dump is done by `faulthandler`
    in the C signal handler, so it is written even when the worker's main thread is stuck in C
    code that never returns to Python; the Python-level handler then runs the hook and exits.
    """
    log = context.log

    def register_dump() -> None:
        # faulthandler's fatal-signal handler (SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL) dumps the
        # stacks, restores the previous handler (ours, installed first) and raises the signal again.
        try:
            faulthandler.enable(file=_log_fd(context), all_threads=True)
        except (OSError, ValueError, RuntimeError):
            pass  # no usable fd: the Python handler still logs and exits

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        if context.logs is not None:
            context.logs.reopen()
            register_dump()  # the log file descriptor may have changed

    def on_abrt(signum: int, frame: FrameType | None) -> None:
        log.critical("worker %d: SIGABRT (heartbeat timeout?): stack dumped above; exiting", os.getpid())
        context.hooks.call("worker_abort", context)
        for handler in logging.getLogger("tricorn").handlers:
            try:
                handler.flush()
            except Exception:
                pass
        os._exit(EXIT_ABORTED)

    def on_retire(signum: int, frame: FrameType | None) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGABRT, on_abrt)
    signal.signal(RETIRE_SIGNAL, on_retire)
    register_dump()
