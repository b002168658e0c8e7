"""The master: binds once, forks workers, watches them, and reacts to signals — in one loop.

`Arbiter` is assembled from the parts listed in `tricorn.arbiter.state`; this module starts the
master, runs the loop, dispatches signals and stops. The loop (`Arbiter._loop`) blocks in
``selector.select`` on: the signal wakeup socket, the workers' wake pipe (ready / request-limit
events), and the optional status and control listeners. Each pass then: handles the signals
received (in order), reaps exited children, checks the workers, and brings the worker set to its
target. The select timeout is the nearest deadline (heartbeat, back-off, stop, memory sampling),
at most one second.

Invariants:
- Signal handlers only record and wake (`tricorn.arbiter.signals`); all work happens here.
- The master starts no threads and no event loop, ever: everything it serves (status, control)
  is non-blocking and driven by this loop, so ``fork`` is always safe.
- A stop (TERM graceful, INT/QUIT quick, or a halt) first closes the master's listening sockets,
  so new connections are refused once the workers close theirs too; in-flight requests finish.
- Every exit path of the master signals its workers and waits for them (at most
  ``graceful_timeout``, then SIGKILL).
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import time
from collections.abc import Callable

from tricorn.core.apploader import AppLoadError
from tricorn.core.heartbeat import EVENT_LIMIT, EVENT_READY, EVENT_RECORD, default_tmp_dir
from tricorn.core.settings import CHDIR, ENV, REUSE_PORT, Settings
from tricorn.core.sockets import ListenError, ssl_context_from_settings
from tricorn.core.worker import EXIT_APP_LOAD_ERROR, Hooks

from . import osutil, systemd
from . import settings as s
from .exits import ExitsMixin
from .generations import GenerationsMixin
from .listeners import chown_unix, close_listener, inherited_fds, open_listeners
from .pidfile import Pidfile, PidfileError
from .signals import SignalWaker
from .state import EXIT_ERROR, ArbiterError, signal_name
from .upgrade import ReexecMixin
from .workerset import WorkerSetMixin

__all__ = ["Arbiter", "ArbiterError", "EXIT_ERROR"]

_TICK = 1.0


class Arbiter(GenerationsMixin, ReexecMixin, ExitsMixin, WorkerSetMixin):
    """The pre-fork master. ``Arbiter(settings, logs, argv=...).run()`` returns the exit code.

    `argv` is what the settings were loaded from; SIGHUP loads them again from it. The fields are
    `MasterState`'s; this class starts the master, runs the loop, dispatches signals and stops."""

    def _start(self) -> None:
        cfg = self.settings
        for key, value in cfg[ENV]:
            os.environ[key] = value
        if cfg[s.UMASK]:
            os.umask(cfg[s.UMASK])
        chdir = cfg[CHDIR]
        if chdir:
            os.chdir(chdir)
            self._start_cwd = chdir
        Hooks.from_settings(cfg, self.log).call("on_starting", self)

        fds, old_pid, from_systemd = inherited_fds(os.environ)
        if old_pid is not None and old_pid == os.getppid():
            self.old_master_pid = old_pid
        self.systemd_sockets = from_systemd and bool(fds)
        try:
            self._listeners = open_listeners(cfg, fds)
        except ListenError as exc:
            raise ArbiterError(str(exc)) from exc
        # systemd's sockets belong to this service for its whole life, reloads included.
        self._systemd_listeners = [x for x in self._listeners
                                   if self.systemd_sockets and x.sock.fileno() in fds]
        chown_unix(self._listeners, cfg[s.USER], cfg[s.GROUP])
        try:
            self._ssl_context = ssl_context_from_settings(cfg)
        except ValueError as exc:
            raise ArbiterError(str(exc)) from exc

        pidfile = cfg[s.PIDFILE]
        if pidfile:
            path = pidfile + ".2" if self.old_master_pid else pidfile
            self._pidfile = Pidfile(path)
            try:
                self._pidfile.create(self.pid)
            except PidfileError as exc:
                self._pidfile = None
                raise ArbiterError(str(exc)) from exc

        try:
            self.generation = self._make_generation(cfg, self._listeners)
        except AppLoadError as exc:
            raise ArbiterError(str(exc), exit_code=EXIT_APP_LOAD_ERROR) from exc
        self._tmp_dir = cfg[s.WORKER_TMP_DIR] or default_tmp_dir()

        self._selector = selectors.DefaultSelector()
        self._waker = SignalWaker()
        self._waker.install()
        self._selector.register(self._waker.fileno(), selectors.EVENT_READ, self._on_signals)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._parent_r, self._parent_w = os.pipe()
        self._start_services(cfg)

        self._set_title()
        for listener in self._listeners:
            self.log.info("Listening at: %s (%d)", listener.url(self._ssl_context is not None),
                          self.pid)
        self.log.info("Using worker: %s", self.generation.worker_class_name)
        if self.old_master_pid:
            self.log.info("Started by master %d (SIGUSR2); pid file %s", self.old_master_pid,
                          self._pidfile.path if self._pidfile else "-")
        for warning in cfg.warnings:
            self.log.warning("%s", warning)
        if cfg[REUSE_PORT] and osutil.tcp_migrate_req() is False:
            self.log.warning("--reuse-port: connections waiting on a stopping worker's own socket "
                             "are reset when it closes (reload, recycling, TTOU); set the sysctl "
                             "net.ipv4.tcp_migrate_req=1 to hand them to the other workers")
        self.hooks.call("when_ready", self)
        systemd.notify(f"STATUS=starting {self.num_workers} workers\nMAINPID={self.pid}")

    def _start_services(self, cfg: Settings) -> None:
        from .control import ControlServer
        from .status import StatusServer

        selector = self._selector
        if selector is None:
            return
        try:
            status_bind, control_socket = cfg[s.STATUS_BIND], cfg[s.CONTROL_SOCKET]
            if status_bind:
                self._services.append(StatusServer(self, status_bind, selector))
            if control_socket:
                self._services.append(ControlServer(self, control_socket, selector))
        except OSError as exc:
            raise ArbiterError(f"cannot start the status/control listener: {exc}") from exc

    def run(self) -> int:
        """Start, loop until stopped, clean up. Returns the exit code."""
        try:
            self._start()
        except ArbiterError as exc:
            self.log.error("%s", exc)
            self._cleanup()
            return exc.exit_code
        try:
            self._loop()
        except BaseException:
            self.log.exception("master failed; stopping the workers")
            self.exit_code = self.exit_code or EXIT_ERROR
            self._emergency_stop()
        finally:
            self.hooks.call("on_exit", self)
            self._cleanup()
        self.log.info("Shutting down: master (exit %d)", self.exit_code)
        return self.exit_code

    def _loop(self) -> None:
        selector = self._selector
        if selector is None:
            return
        while True:
            timeout = self._next_timeout(time.monotonic())
            try:
                events = selector.select(timeout)
            except InterruptedError:
                events = []
            for key, mask in events:
                callback = key.data
                callback(key.fileobj, mask)
            self._reap()
            now = time.monotonic()
            self._check_workers(now)
            if self.stopping:
                if self._check_stop(now):
                    return
                continue
            self._check_promotion()
            self._manage(now)
            for service in self._services:
                service.tick(now)

    def _next_timeout(self, now: float) -> float:
        deadlines = [now + _TICK]
        timeout = self.generation.settings[s.TIMEOUT] if self.generation else 0.0
        for worker in self.workers.values():
            if worker.aborted_at:
                deadlines.append(worker.aborted_at + self._abort_timeout())
            elif timeout > 0 and not worker.killed:
                deadlines.append(worker.slot.last_notify() + timeout + 0.01)
            if worker.retire_deadline:
                deadlines.append(worker.retire_deadline)
        if self.spawn_not_before > now:
            deadlines.append(self.spawn_not_before)
        if self.stopping:
            deadlines.append(self.stop_deadline)
        return max(0.0, min(deadlines) - now)

    def _on_signals(self, fileobj: object, mask: int) -> None:
        if self._waker is None:
            return
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGHUP: self._on_hup,
            signal.SIGTERM: lambda: self.stop(graceful=True),
            signal.SIGINT: lambda: self.stop(graceful=False),
            signal.SIGQUIT: lambda: self.stop(graceful=False),
            signal.SIGTTIN: lambda: self.set_workers(self.num_workers + 1),
            signal.SIGTTOU: lambda: self.set_workers(max(1, self.num_workers - 1)),
            signal.SIGUSR1: self.reopen_logs,
            signal.SIGUSR2: self.reexec,
            signal.SIGWINCH: self._on_winch,
        }
        for signum in self._waker.drain():
            if signum == signal.SIGCHLD:
                continue  # every pass reaps
            self.log.info("Handling signal: %s", signal_name(signum).removeprefix("SIG").lower())
            handler = handlers.get(signum)
            if handler is not None:
                handler()

    def _on_wake(self, fileobj: object, mask: int) -> None:
        try:
            data = os.read(self._wake_r, EVENT_RECORD.size * 256)
        except (BlockingIOError, InterruptedError):
            return
        now = time.monotonic()
        for offset in range(0, len(data) - len(data) % EVENT_RECORD.size, EVENT_RECORD.size):
            pid, event = EVENT_RECORD.unpack_from(data, offset)
            worker = self.workers.get(pid)
            if worker is None:
                continue
            if event == EVENT_READY:
                self._mark_ready(worker, now)
            elif event == EVENT_LIMIT and worker.recycle is None and worker.state == "ready":
                worker.recycle = "max_requests"
                self.log.info("Worker (pid:%d) served %d requests; recycling", pid,
                              worker.request_limit)

    def stop(self, graceful: bool = True) -> None:
        now = time.monotonic()
        if self.stopping and (graceful or not self.stop_graceful):
            return
        escalate = self.stopping
        self.stopping = True
        self.stop_graceful = graceful
        if not escalate:
            systemd.notify("STOPPING=1")
            self.stop_deadline = now + self._graceful_timeout()
            self._stop_listening()
        if not graceful:
            cfg = self.generation.settings if self.generation else self.settings
            self.stop_deadline = min(self.stop_deadline, now + cfg[s.QUICK_TIMEOUT])
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for worker in self.workers.values():
            if not worker.killed:
                worker.state = "retiring"
                worker.retire_reason = worker.retire_reason or "shutdown"
                worker.signal(sig)

    def _stop_listening(self) -> None:
        """Refuse new connections from now on: close the master's copies of the listening
        sockets (the workers close theirs as they stop accepting). Unix socket files stay until
        `_cleanup`, which decides whether to remove them."""
        for listener in self._listeners:
            close_listener(listener, unlink=False)

    def reopen_logs(self) -> None:
        self.logs.reopen()
        for worker in self.workers.values():
            worker.signal(signal.SIGUSR1)

    def _on_winch(self) -> None:
        if os.isatty(0) and not self.settings[s.DAEMON]:
            self.log.debug("SIGWINCH ignored (attached to a terminal)")
            return
        self.log.info("Stopping all workers (SIGWINCH); the master keeps the sockets")
        self.set_workers(0)

    def _on_hup(self) -> None:
        self.reload()

    def _cleanup(self) -> None:
        for service in self._services:
            service.close()
        self._services.clear()
        unlink = not self.reexec_pid and not self.systemd_sockets
        for listener in self._listeners:
            close_listener(listener, unlink=unlink and listener.address.kind == "unix")
        self._listeners.clear()
        if self._waker is not None:
            self._waker.uninstall()
            self._waker.close()
            self._waker = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for fd in (self._wake_r, self._wake_w, self._parent_r, self._parent_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError as exc:
                    if exc.errno != errno.EBADF:
                        raise
        self._wake_r = self._wake_w = self._parent_r = self._parent_w = -1
        if self._pidfile is not None:
            self._pidfile.remove()
            self._pidfile = None
