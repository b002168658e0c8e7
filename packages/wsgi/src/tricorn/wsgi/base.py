"""What the sync and gthread workers share: booting from a `WorkerContext`, signals, timers.

The worker contract is `tricorn.core.worker` (the arbiter forks workers through it; the standalone
command runs the same classes in-process). A worker here:

- boots in `run`: loads the application (`AppLoadError` -> exit code 4), builds the `Handler`
  from the settings (any other failure -> exit code 3), installs SIGTERM, SIGHUP (retire: a
  graceful stop that drains idle keep-alive connections, see `tricorn.core.worker`), SIGINT and
  SIGQUIT, then calls
  ``heartbeat.ready()`` once it polls its listening sockets;
- records signals and wakes its loop through ``signal.set_wakeup_fd`` (handlers only set flags),
  except that a quick stop (SIGINT/SIGQUIT) interrupts an application call in the sync worker,
  and a graceful stop (SIGTERM) arms an alarm that ends the process if the in-flight request is
  still running after ``graceful_timeout``;
- reads its settings with `setting()`, which falls back to the declared default for settings the
  loaded `Settings` lacks (the arbiter may load settings before this package registered its own).

Invariants: the listening sockets are never closed before the worker stops accepting for good, and
a stopping worker answers in-flight requests with ``Connection: close``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
from types import FrameType
from typing import Any, Final, TypeVar

from tricorn.core.apploader import AppLoadError
from tricorn.core.environ import EnvironBuilder
from tricorn.core.logs import ErrorStream
from tricorn.core.parser import CLimits, c_limits
from tricorn.core.proxy import TrustedPeers
from tricorn.core.settings import (
    DATE_HEADER,
    FORWARDED_ALLOW_IPS,
    GRACEFUL_TIMEOUT,
    HEADER,
    KEEP_ALIVE,
    PROXY_HEADERS,
    ROOT_PATH,
    SERVER_HEADER,
    TIMEOUT_BODY_READ,
    TIMEOUT_HEADER_READ,
    TIMEOUT_WRITE,
    Setting,
    parser_limits,
)
from tricorn.core.worker import (
    EXIT_APP_LOAD_ERROR,
    EXIT_BOOT_ERROR,
    EXIT_OK,
    RETIRE_SIGNAL,
    NullHeartbeat,
    WorkerContext,
)

from .filewrapper import FileWrapper
from .handler import Handler
from .settings import HEADER_MAP, SENDFILE, THREADS, WORKER_CONNECTIONS

T = TypeVar("T")
SERVER_LINE: Final = b"server: tricorn\r\n"
LINGER_SECONDS: Final = 1.0
"""How long a closing connection is drained of unread input before it is closed."""
STOP_GRACE: Final = 1.0
"""After SIGTERM, how long a connection that owes a response (accepted, but its request not read
yet; or idle with input pending) may still send its request."""


def setting(cfg: Any, s: Setting[T]) -> T:
    """``cfg[s]``, or the setting's default when the loaded settings lack it."""
    data = getattr(cfg, "data", cfg)
    if s.name in data:
        return data[s.name]  # type: ignore[no-any-return]
    return s.default


class QuickExit(BaseException):
    """Raised by the quick-stop signal handler to unwind an application call (sync worker)."""


class BaseWorker:
    """Boot, settings and signals for one worker process (subclasses serve)."""

    persistent: bool = True

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.cfg = context.settings
        self.log: logging.Logger = context.log
        self.heartbeat = context.heartbeat if context.heartbeat is not None else NullHeartbeat()
        self.listeners: list[socket.socket] = list(context.sockets)
        self.ssl_context: ssl.SSLContext | None = context.ssl_context
        cfg = self.cfg
        self.header_timeout = float(setting(cfg, TIMEOUT_HEADER_READ))
        self.keep_alive = float(setting(cfg, KEEP_ALIVE))
        self.graceful_timeout = float(setting(cfg, GRACEFUL_TIMEOUT))
        self.read_timeout = float(setting(cfg, TIMEOUT_BODY_READ))
        self.write_timeout = float(setting(cfg, TIMEOUT_WRITE))
        self.threads = int(setting(cfg, THREADS))
        self.max_connections = int(setting(cfg, WORKER_CONNECTIONS))
        self.notify_interval = min(max(context.notify_interval, 0.05), 1.0)
        self.stopping = False
        self.retiring = False  # stopping by RETIRE_SIGNAL: drain idle keep-alive connections
        self.quitting = False
        self.busy = False
        """The sync worker is inside a request (signals then act on the request)."""
        self.handler: Handler | None = None
        self.climits: CLimits | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._old_wakeup_fd = -1

    # ------------------------------------------------------------------------------------ boot

    def boot(self) -> int | None:
        """Load the app and build the handler; an exit code on failure, else None."""
        try:
            app = self.context.load_app()
        except AppLoadError as exc:
            self.log.error("%s", exc, exc_info=exc.__cause__ is not None)
            return EXIT_APP_LOAD_ERROR
        except Exception:
            self.log.exception("cannot load the application %s", self.context.app_spec)
            return EXIT_APP_LOAD_ERROR
        if not callable(app):
            self.log.error("the application %s is not callable", self.context.app_spec)
            return EXIT_APP_LOAD_ERROR
        try:
            self.handler = self.build_handler(app)
            self.climits = c_limits(parser_limits(self.cfg))
        except Exception:
            self.log.exception("worker failed to boot")
            return EXIT_BOOT_ERROR
        return None

    def build_handler(self, app: Any) -> Handler:
        cfg = self.cfg
        logs = self.context.logs
        trusted = None
        if setting(cfg, PROXY_HEADERS):
            allowed: tuple[str, ...] = setting(cfg, FORWARDED_ALLOW_IPS)
            trusted = TrustedPeers(allowed)
        workers = cfg.data.get("workers", 1)
        header_map = str(setting(cfg, HEADER_MAP))
        builder = EnvironBuilder(
            errors=ErrorStream(logs.handler if logs is not None else None),
            multithread=self.threads > 1,
            multiprocess=isinstance(workers, int) and workers > 1,
            root_path=str(setting(cfg, ROOT_PATH)),
            header_map=header_map,
            trusted_peers=trusted,
            file_wrapper=FileWrapper,
        )
        extra = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in setting(cfg, HEADER)]
        return Handler(
            app,
            builder,
            server_line=SERVER_LINE if setting(cfg, SERVER_HEADER) else b"",
            date_header=bool(setting(cfg, DATE_HEADER)),
            extra_headers=extra,
            access_log=logs.access if logs is not None else None,
            sendfile=bool(setting(cfg, SENDFILE)),
            persistent=self.persistent and self.keep_alive > 0,
            refuse_underscore=header_map == "refuse",
            heartbeat=self.heartbeat,
            hooks=self.context.hooks,
            hook_worker=self.context,
        )

    # --------------------------------------------------------------------------------- signals

    def install_signals(self) -> None:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._wake_r, self._wake_w = r, w
        self._old_wakeup_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(RETIRE_SIGNAL, self._on_retire)
        signal.signal(signal.SIGINT, self._on_quit)
        signal.signal(signal.SIGQUIT, self._on_quit)
        signal.signal(signal.SIGALRM, self._on_alarm)

    def restore_signals(self) -> None:
        for signum in (signal.SIGTERM, RETIRE_SIGNAL, signal.SIGINT, signal.SIGQUIT, signal.SIGALRM):
            try:
                signal.signal(signum, signal.SIG_DFL if signum != signal.SIGINT
                              else signal.default_int_handler)
            except (ValueError, OSError):
                pass
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            signal.set_wakeup_fd(self._old_wakeup_fd)
        except ValueError:
            pass
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None

    def wake(self) -> None:
        """Wake the worker's loop (from another thread)."""
        w = self._wake_w
        if w is not None:
            try:
                w.send(b"\0")
            except OSError:
                pass

    def drain_wakeups(self) -> None:
        r = self._wake_r
        if r is None:
            return
        try:
            while r.recv(4096):
                pass
        except OSError:
            pass

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.handler is not None:
            self.handler.closing = True
        if self.busy and self.graceful_timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, self.graceful_timeout)

    def _on_retire(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.retiring = True
        self._on_term(signum, frame)

    def _on_quit(self, signum: int, frame: FrameType | None) -> None:
        if self.quitting:
            os._exit(EXIT_OK)  # a second quick-stop signal: stop right now
        self.quitting = True
        self.stopping = True
        if self.handler is not None:
            self.handler.closing = True
        if self.busy:
            raise QuickExit()

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping and self.busy:
            try:
                os.write(2, b"tricorn-wsgi: graceful timeout expired with a request in flight; "
                            b"exiting\n")
            except OSError:
                pass
            os._exit(1)

    def parent_gone(self) -> bool:
        ppid = self.context.ppid
        return ppid > 1 and os.getppid() != ppid

    def on_quick_stop(self) -> None:
        self.context.hooks.call("worker_int", self.context)
