"""The master: binds once, forks workers, watches them, and reacts to signals — in one loop.

The loop (`Arbiter._loop`) blocks in ``selector.select`` on: the signal wakeup socket, the
workers' wake pipe (ready / request-limit events), and the optional status and control listeners.
Each pass then: handles the signals received (in order), reaps exited children, checks
heartbeats, checks recycling limits, and brings the worker set to its target
(`Arbiter._manage`). The select timeout is the nearest deadline (heartbeat, back-off, stop,
memory sampling), at most one second.

Invariants:
- Signal handlers only record and wake (`tricorn.arbiter.signals`); all work happens here.
- The master starts no threads and no event loop, ever: everything it serves (status, control)
  is non-blocking and driven by this loop, so ``fork`` is always safe.
- Only pids in `Arbiter.workers` are treated as workers; other children (hook subprocesses, the
  re-exec child) are never mistaken for them. As pid 1, stray orphans are reaped too.
- A worker that exits before ``ready`` is a boot failure: exit 3/4 with no ready worker halts the
  master with that code; `boot_failure_limit` failures in a row halt it too (signal deaths
  during boot included: no endless boot loop). A worker that dies after ready is replaced at
  once; repeated crashes back off exponentially (`respawn_backoff_max`).
- Replacement before removal: an outgoing worker (older generation after SIGHUP, or one marked
  for recycling) is retired only when a replacement is ready, never more than `rolling_surge`
  replacements boot at once, and a replacement that fails to boot reverts to the previous
  generation (the old workers keep serving).
- Every exit path of the master signals its workers and waits for them (at most
  ``graceful_timeout``, then SIGKILL).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import random
import selectors
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tricorn.core.apploader import AppLoadError, load_app
from tricorn.core.heartbeat import (
    EVENT_LIMIT,
    EVENT_READY,
    EVENT_RECORD,
    HeartbeatSlot,
    default_tmp_dir,
)
from tricorn.core.logs import Logs, setup_from_settings
from tricorn.core.settings import (
    APP,
    CHDIR,
    ENV,
    FACTORY,
    GRACEFUL_TIMEOUT,
    REGISTRY,
    REUSE_PORT,
    Settings,
    SettingsError,
)
from tricorn.core.sockets import Listener, ListenError, ssl_context_from_settings
from tricorn.core.worker import (
    EXIT_APP_LOAD_ERROR,
    EXIT_BOOT_ERROR,
    RETIRE_SIGNAL,
    Hooks,
    WorkerClassError,
    resolve_worker_class,
)

from . import osutil, systemd
from . import settings as s
from .child import ChildPlan, run_child
from .listeners import FD_ENV, PID_ENV, chown_unix, close_listener, inherited_fds, open_listeners
from .pidfile import Pidfile, PidfileError
from .process import Generation, WorkerProcess
from .signals import SignalWaker

__all__ = ["Arbiter", "ArbiterError", "EXIT_ERROR"]

EXIT_ERROR = 1
"""The master could not start (sockets, pid file, worker class, settings)."""

_TICK = 1.0
_SIGNAMES = {int(sig): sig.name for sig in signal.Signals}


class ArbiterError(Exception):
    """The master cannot start; `exit_code` is what the command exits with."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def signal_name(signum: int) -> str:
    return _SIGNAMES.get(signum, f"signal {signum}")


class Arbiter:
    """The pre-fork master. ``Arbiter(settings, logs, argv=...).run()`` returns the exit code.

    `argv` is what the settings were loaded from; SIGHUP loads them again from it."""

    def __init__(
        self,
        settings: Settings,
        logs: Logs,
        *,
        argv: Sequence[str] | None = None,
        load_settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.logs = logs
        self.log = logs.error
        self.argv = list(argv) if argv is not None else None
        self._load_settings = load_settings or self._default_loader
        self.pid = os.getpid()
        self.workers: dict[int, WorkerProcess] = {}
        self.generation: Generation | None = None
        self.num_workers = settings[s.WORKERS]
        self.exit_code = 0
        self.started_at = time.time()
        self.stopping = False
        self.stop_graceful = True
        self.stop_deadline = 0.0
        self.spawn_not_before = 0.0
        self.boot_failures = 0
        self.crash_streak = 0
        self.last_crash = -1e9
        self.restarts: Counter[str] = Counter()
        self.retired_requests = 0
        self.retired_duration_sum = 0.0
        self.retired_buckets: list[int] = []
        self.reexec_pid = 0
        self.old_master_pid: int | None = None
        self.systemd_sockets = False
        self._systemd_listeners: list[Listener] = []
        self.announced_ready = False
        self.reloading = False
        self._age = 0
        self._listeners: list[Listener] = []
        self._selector: selectors.BaseSelector | None = None
        self._waker: SignalWaker | None = None
        self._wake_r = self._wake_w = -1
        self._parent_r = self._parent_w = -1
        self._pidfile: Pidfile | None = None
        self._tmp_dir: str | None = None
        self._next_memory_check = 0.0
        self._preload_modules: set[str] = set()
        self._services: list[Any] = []
        self._start_cwd = os.getcwd()
        self._ssl_context: object | None = None

    # ------------------------------------------------------------------------------------------
    # Gunicorn-compatible attributes for hooks

    @property
    def cfg(self) -> Settings:
        return self.settings

    @property
    def WORKERS(self) -> dict[int, WorkerProcess]:  # noqa: N802 - Gunicorn's spelling for hooks
        return self.workers

    @property
    def LISTENERS(self) -> list[Listener]:  # noqa: N802
        return self._listeners

    @property
    def hooks(self) -> Hooks:
        if self.generation is not None:
            return self.generation.hooks
        return Hooks.from_settings(self.settings, self.log)

    # ------------------------------------------------------------------------------------------
    # Start

    def _default_loader(self) -> Settings:
        return REGISTRY.load("arbiter", self.argv)

    def _resolve_class(self, cfg: Settings) -> tuple[type[Any], str]:
        name = cfg[s.WORKER_CLASS]
        try:
            return resolve_worker_class(name, threads=s.worker_threads(cfg)), name
        except WorkerClassError as exc:
            raise ArbiterError(str(exc)) from exc

    def _preload(self, cfg: Settings) -> object | None:
        if not cfg[s.PRELOAD]:
            return None
        if self._preload_modules:  # a reload: forget the app's modules so they are imported anew
            for name in self._preload_modules:
                sys.modules.pop(name, None)
            importlib.invalidate_caches()
        before = set(sys.modules)
        chdir = cfg[CHDIR]
        app = load_app(cfg[APP] or "", factory=cfg[FACTORY], app_dir=chdir or os.getcwd())
        self._preload_modules |= set(sys.modules) - before
        return app

    def _make_generation(self, cfg: Settings, listeners: Sequence[Listener]) -> Generation:
        worker_class, name = self._resolve_class(cfg)
        app = self._preload(cfg)  # raises AppLoadError
        number = 1 if self.generation is None else self.generation.number + 1
        return Generation(
            number=number,
            settings=cfg,
            worker_class=worker_class,
            worker_class_name=name,
            app_spec=cfg[APP] or "",
            app=app,
            hooks=Hooks.from_settings(cfg, self.log),
            listeners=tuple(listeners),
        )

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

    def _set_title(self) -> None:
        name = self.settings[s.NAME] or (self.settings[APP] or "")
        suffix = ".2" if self.old_master_pid else ""
        osutil.set_proc_title(f"tricorn: master [{name}]{suffix}")

    # ------------------------------------------------------------------------------------------
    # Run

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

    def _abort_timeout(self) -> float:
        cfg = self.generation.settings if self.generation else self.settings
        return cfg[s.ABORT_TIMEOUT]

    def _graceful_timeout(self) -> float:
        cfg = self.generation.settings if self.generation else self.settings
        return cfg[GRACEFUL_TIMEOUT]

    # ------------------------------------------------------------------------------------------
    # Events

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

    # ------------------------------------------------------------------------------------------
    # Signals' actions (also called by the control socket)

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
        if not graceful:
            cfg = self.generation.settings if self.generation else self.settings
            self.stop_deadline = min(self.stop_deadline, now + cfg[s.QUICK_TIMEOUT])
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for worker in self.workers.values():
            if not worker.killed:
                worker.state = "retiring"
                worker.retire_reason = worker.retire_reason or "shutdown"
                worker.signal(sig)

    def set_workers(self, count: int) -> None:
        if self.stopping:
            return
        old, self.num_workers = self.num_workers, max(0, count)
        if old != self.num_workers:
            self.log.info("Workers: %d -> %d", old, self.num_workers)
            self.hooks.call("nworkers_changed", self, self.num_workers, old)

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

    def reload(self) -> bool:
        """Reload settings, worker class and app (re-imported when preloaded), then replace every
        worker, readiness-gated. On any error the current workers keep serving. True if started."""
        if self.stopping or self.generation is None:
            return False
        try:
            cfg = self._load_settings()
        except SettingsError as exc:
            self.log.error("Reload failed, keeping the current configuration: %s", exc)
            return False
        except SystemExit:
            self.log.error("Reload failed (invalid command line); keeping the current config")
            return False
        try:
            logs = setup_from_settings(cfg)
        except (OSError, ValueError) as exc:
            self.log.error("Reload: cannot set up logging (%s); keeping the old logs", exc)
        else:
            old_access = self.logs.access
            self.logs = logs
            self.log = logs.error
            if old_access is not None:
                old_access.close()
        try:
            listeners = open_listeners(cfg, current=self._listeners,
                                       inherited=self._systemd_listeners)
        except ListenError as exc:
            self.log.error("Reload failed, keeping the current configuration: %s", exc)
            return False
        try:
            generation = self._make_generation(cfg, listeners)
        except (ArbiterError, AppLoadError) as exc:
            self.log.error("Reload failed, keeping the current workers: %s", exc)
            self._close_unused_listeners(extra=listeners)
            return False
        for listener in listeners:
            if listener not in self._listeners:
                self._listeners.append(listener)
                self.log.info("Listening at: %s (%d)", listener.url(), self.pid)
        self.settings = cfg
        self.generation = generation
        self.set_workers(cfg[s.WORKERS])
        self.reloading = True
        self.announced_ready = False
        systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        generation.hooks.call("on_reload", self)
        self.log.info("Reloading: generation %d, %d workers", generation.number, self.num_workers)
        return True

    def reexec(self) -> None:
        """SIGUSR2: start a new master from the same command line, passing it the sockets."""
        if self.reexec_pid:
            self.log.warning("USR2 ignored: a new master (pid %d) is already running",
                             self.reexec_pid)
            return
        if self.old_master_pid:
            self.log.warning("USR2 ignored: this master is not promoted yet (old master %d)",
                             self.old_master_pid)
            return
        fds = [listener.fileno() for listener in self._listeners]
        waker = self._waker
        if waker is not None:
            waker.block()
        try:
            pid = os.fork()
        except OSError as exc:
            self.log.error("USR2: fork failed: %s", exc)
            pid = -1
        if pid != 0:
            if waker is not None:
                waker.unblock()
            if pid > 0:
                self.reexec_pid = pid
                self.log.info("Started new master (pid %d) for the binary upgrade", pid)
            return
        try:
            if waker is not None:
                waker.reset_in_child()
            self.hooks.call("pre_exec", self)
            env = dict(os.environ)
            env[FD_ENV] = ",".join(str(fd) for fd in fds)
            env[PID_ENV] = str(self.pid)
            for fd in fds:
                os.set_inheritable(fd, True)
            os.chdir(self._start_cwd)
            argv = [sys.executable, *sys.orig_argv[1:]]
            os.execve(sys.executable, argv, env)
        except BaseException:
            self.log.exception("re-exec failed")
        finally:
            os._exit(EXIT_ERROR)

    def _check_promotion(self) -> None:
        if self.old_master_pid and os.getppid() != self.old_master_pid:
            self.log.info("Master has been promoted (the old master %d exited)",
                          self.old_master_pid)
            self.old_master_pid = None
            pidfile = self.settings[s.PIDFILE]
            if self._pidfile is not None and pidfile:
                try:
                    self._pidfile.rename(pidfile)
                except PidfileError as exc:
                    self.log.error("%s", exc)
            self._set_title()

    # ------------------------------------------------------------------------------------------
    # Workers

    def _spawn(self) -> WorkerProcess | None:
        generation = self.generation
        if generation is None:
            return None
        cfg = generation.settings
        self._age += 1
        limit = cfg[s.MAX_REQUESTS]
        if limit > 0:
            limit += random.randint(0, cfg[s.MAX_REQUESTS_JITTER])
        try:
            slot = HeartbeatSlot.create(self._tmp_dir, request_limit=limit)
        except OSError as exc:
            self.log.error("cannot create a heartbeat page in %s: %s", self._tmp_dir, exc)
            self.spawn_not_before = time.monotonic() + 1.0
            return None
        worker = WorkerProcess(
            age=self._age, generation=generation, slot=slot, log=self.log, request_limit=limit
        )
        generation.hooks.call("pre_fork", self, worker)
        for handler in logging.getLogger("tricorn").handlers:
            handler.flush()
        waker = self._waker
        if waker is not None:
            waker.block()
        try:
            pid = os.fork()
        except OSError as exc:
            if waker is not None:
                waker.unblock()
            slot.close()
            self.log.error("fork failed: %s", exc)
            self.spawn_not_before = time.monotonic() + 1.0
            return None
        if pid == 0:
            run_child(self._child_plan(worker))  # never returns; unblocks in the child
            os._exit(EXIT_BOOT_ERROR)
        if waker is not None:
            waker.unblock()
        worker.pid = pid
        worker.spawned_at = time.monotonic()
        self.workers[pid] = worker
        self.log.info("Booting worker with pid: %d", pid)
        return worker

    def _child_plan(self, worker: WorkerProcess) -> ChildPlan:
        cfg = worker.generation.settings
        name = cfg[s.NAME] or (cfg[APP] or "")
        return ChildPlan(
            worker=worker,
            server=self,
            logs=self.logs,
            wake_fd=self._wake_w,
            parent_fd=self._parent_r,
            ppid=self.pid,
            close_master_state=lambda: self._close_in_child(worker),
            reuse_port=cfg[REUSE_PORT],
            backlog=cfg["backlog"],  # type: ignore[arg-type]
            uid=cfg[s.USER],
            gid=cfg[s.GROUP],
            umask=cfg[s.UMASK],
            title=f"tricorn: worker [{name}]",
            reload=cfg[s.RELOAD],
            reload_interval=cfg[s.RELOAD_INTERVAL],
            graceful_timeout=cfg[GRACEFUL_TIMEOUT],
            abort_timeout=cfg[s.ABORT_TIMEOUT],
            ssl_context=self._ssl_context,
        )

    def _close_in_child(self, worker: WorkerProcess) -> None:
        """In the forked child: drop everything that belongs to the master."""
        if self._waker is not None:
            self._waker.reset_in_child()
        for service in self._services:
            service.close_in_child()
        if self._selector is not None:
            try:
                self._selector.close()
            except OSError:
                pass
        for fd in (self._wake_r, self._parent_w):
            try:
                os.close(fd)
            except OSError:
                pass
        for other in self.workers.values():
            if other is not worker:
                other.slot.close()
        used = {id(listener) for listener in worker.generation.listeners}
        for listener in self._listeners:
            if id(listener) not in used:
                close_listener(listener, unlink=False)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _mark_ready(self, worker: WorkerProcess, now: float) -> None:
        if worker.state != "booting":
            return
        reading = worker.slot.read()
        worker.state = "ready"
        worker.ready_at = reading.ready_at or now
        cfg = worker.generation.settings
        lifetime = cfg[s.MAX_WORKER_LIFETIME]
        if lifetime > 0:
            jitter = random.uniform(0, cfg[s.MAX_WORKER_LIFETIME_JITTER])
            worker.lifetime_deadline = worker.ready_at + lifetime + jitter
        self.boot_failures = 0
        self.log.info("Worker (pid:%d) ready in %.0f ms", worker.pid,
                      (worker.ready_at - worker.spawned_at) * 1000)

    def _check_workers(self, now: float) -> None:
        """Readiness (polled), heartbeat timeouts, retirement deadlines, recycling limits."""
        cfg = self.generation.settings if self.generation else self.settings
        timeout = cfg[s.TIMEOUT]
        abort_timeout = cfg[s.ABORT_TIMEOUT]
        sample_memory = now >= self._next_memory_check
        if sample_memory:
            self._next_memory_check = now + cfg[s.MEMORY_CHECK_INTERVAL]
        memory_limit = cfg[s.MAX_WORKER_MEMORY]
        for worker in list(self.workers.values()):
            if worker.killed:
                continue
            if worker.state == "booting" and worker.slot.read().ready_at > 0:
                self._mark_ready(worker, now)
            if worker.aborted_at:
                if now - worker.aborted_at >= abort_timeout:
                    self.log.error("Worker (pid:%d) did not exit after SIGABRT; sending SIGKILL",
                                   worker.pid)
                    worker.kill("timeout")
                continue
            if worker.retire_deadline and now >= worker.retire_deadline:
                self.log.warning("Worker (pid:%d) still running %.1f s after retiring; SIGKILL",
                                 worker.pid, self._graceful_timeout())
                worker.kill("graceful timeout")
                continue
            if timeout > 0:
                silent = now - worker.slot.last_notify()
                if silent > timeout:
                    self.log.critical("WORKER TIMEOUT (pid:%d): no heartbeat for %.1f s; "
                                      "sending SIGABRT", worker.pid, silent)
                    worker.kill_reason = "timeout"
                    worker.aborted_at = now
                    worker.signal(signal.SIGABRT)
                    continue
            if worker.state != "ready" or worker.recycle is not None:
                continue
            if worker.lifetime_deadline and now >= worker.lifetime_deadline:
                worker.recycle = "lifetime"
                self.log.info("Worker (pid:%d) reached its lifetime; recycling", worker.pid)
            elif worker.request_limit and worker.slot.read().requests >= worker.request_limit:
                worker.recycle = "max_requests"
                self.log.info("Worker (pid:%d) served %d requests; recycling", worker.pid,
                              worker.request_limit)
            if sample_memory:
                worker.rss = osutil.rss_bytes(worker.pid)
                if memory_limit and worker.rss is not None and worker.rss > memory_limit:
                    worker.recycle = "memory"
                    self.log.warning("Worker (pid:%d) uses %d MiB (limit %d MiB); recycling",
                                     worker.pid, worker.rss >> 20, memory_limit >> 20)

    def _retire(self, worker: WorkerProcess, reason: str) -> None:
        if worker.state == "retiring":
            return
        worker.state = "retiring"
        worker.retire_reason = reason
        worker.retire_deadline = time.monotonic() + self._graceful_timeout()
        self.log.info("Stopping worker (pid:%d): %s", worker.pid, reason)
        worker.signal(RETIRE_SIGNAL)

    def _manage(self, now: float) -> None:
        """Bring the worker set to its target: spawn, then retire what is outgoing or surplus."""
        generation = self.generation
        if generation is None:
            return
        target = self.num_workers
        active = [w for w in self.workers.values() if w.state != "retiring" and not w.killed]
        keep = [w for w in active if w.generation is generation and w.recycle is None]
        outgoing = [w for w in active if w.generation is not generation or w.recycle is not None]
        surge = generation.settings[s.ROLLING_SURGE]

        missing = target - len(keep)
        if missing > 0 and now >= self.spawn_not_before:
            booting = sum(1 for w in keep if w.state == "booting")
            allowed = missing if not outgoing else max(0, surge - booting)
            for _ in range(min(missing, allowed)):
                worker = self._spawn()
                if worker is None:
                    break
                keep.append(worker)

        # Outgoing workers that never became ready serve nobody: retire them now.
        for worker in [w for w in outgoing if w.state == "booting"]:
            self._retire(worker, "outgoing before ready")
            outgoing.remove(worker)
        ready_keep = sum(1 for w in keep if w.state == "ready")
        excess = ready_keep + len(outgoing) - target
        outgoing.sort(key=lambda w: (w.generation.number, w.age))
        retiring = outgoing[: max(0, excess)]
        for worker in retiring:
            reason = worker.recycle or f"replaced by generation {generation.number}"
            self.restarts[worker.recycle or "reload"] += 1
            self._retire(worker, reason)
        if len(keep) > target:
            surplus = sorted(keep, key=lambda w: (w.state == "ready", -w.age))
            for worker in surplus[: len(keep) - target]:
                self._retire(worker, "fewer workers wanted")

        ready_now = sum(1 for w in keep if w.state == "ready")
        if not self.announced_ready and ready_now >= target and len(outgoing) == len(retiring):
            self.announced_ready = True
            if self.reloading:
                self.reloading = False
                self.log.info("Reload complete: generation %d serving", generation.number)
            systemd.notify(f"READY=1\nSTATUS={ready_now} workers ready")
            self._close_unused_listeners()

    # ------------------------------------------------------------------------------------------
    # Exits

    def _reap(self) -> None:
        for pid in list(self.workers):
            try:
                wpid, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, status = pid, 0
            if wpid:
                self._worker_exited(self.workers.pop(pid), status)
        if self.reexec_pid:
            try:
                wpid, status = os.waitpid(self.reexec_pid, os.WNOHANG)
            except ChildProcessError:
                wpid, status = self.reexec_pid, 0
            if wpid:
                self.log.info("New master (pid %d) exited: %s", wpid, self._describe(status))
                self.reexec_pid = 0
        if self.pid == 1:
            while True:
                try:
                    wpid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if not wpid:
                    break

    @staticmethod
    def _describe(status: int) -> str:
        code = os.waitstatus_to_exitcode(status)
        return f"signal {signal_name(-code)}" if code < 0 else f"exit code {code}"

    def _worker_exited(self, worker: WorkerProcess, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        worker.exit_code = code
        reading = worker.slot.read()
        self.retired_requests += reading.requests
        self.retired_duration_sum += reading.duration_sum
        if not self.retired_buckets:
            self.retired_buckets = [0] * len(reading.buckets)
        for i, count in enumerate(reading.buckets):
            self.retired_buckets[i] += count
        worker.slot.close()
        ready = worker.state != "booting" or reading.ready_at > 0
        expected = worker.state == "retiring" or self.stopping
        self._log_exit(worker, code, expected)
        worker.generation.hooks.call("child_exit", self, worker)
        if self.stopping:
            return
        now = time.monotonic()
        if worker.kill_reason == "timeout":
            self.restarts["timeout"] += 1
        if expected:
            return
        if not ready:
            self._boot_failed(worker, code, now)
            return
        if worker.kill_reason != "timeout":
            self.restarts["crash"] += 1
        self._schedule_respawn(now, uptime=now - worker.ready_at if worker.ready_at else 0.0)

    def _log_exit(self, worker: WorkerProcess, code: int, expected: bool) -> None:
        pid = worker.pid
        if code >= 0:
            level = logging.INFO if code == 0 or expected else logging.ERROR
            self.log.log(level, "Worker (pid:%d) exited with code %d", pid, code)
            return
        name = signal_name(-code)
        if worker.kill_reason is not None:
            self.log.log(logging.WARNING if worker.kill_reason == "timeout" else logging.INFO,
                         "Worker (pid:%d) was sent %s by the master (%s)", pid, name,
                         worker.kill_reason)
        elif -code == signal.SIGKILL:
            self.log.error("Worker (pid:%d) was sent SIGKILL from outside the master "
                           "(out of memory? an operator?)", pid)
        elif expected and -code in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
            self.log.info("Worker (pid:%d) exited on %s", pid, name)
        else:
            self.log.error("Worker (pid:%d) was killed by signal %s", pid, name)

    def _boot_failed(self, worker: WorkerProcess, code: int, now: float) -> None:
        generation = self.generation
        self.restarts["boot_failure"] += 1
        if worker.generation is not generation:
            return  # an outgoing worker that never became ready: nothing to replace
        reason = f"code {code}" if code >= 0 else f"signal {signal_name(-code)}"
        older = [w for w in self.workers.values()
                 if w.generation is not generation and w.state == "ready"]
        if older:
            previous = max((w.generation for w in older), key=lambda g: g.number)
            self.log.error("Reload failed: a worker of generation %d exited (%s) before it was "
                           "ready; reverting to generation %d", worker.generation.number,
                           reason, previous.number)
            self.generation = previous
            self.settings = previous.settings
            self.reloading = False
            self.announced_ready = True
            return
        self.boot_failures += 1
        any_ready = any(w.state == "ready" for w in self.workers.values())
        if code in (EXIT_BOOT_ERROR, EXIT_APP_LOAD_ERROR) and not any_ready:
            what = "failed to boot" if code == EXIT_BOOT_ERROR else "could not load the app"
            self.halt(code, f"Worker {what} (pid:{worker.pid}, exit {code})")
            return
        limit = generation.settings[s.BOOT_FAILURE_LIMIT] if generation else 3
        if self.boot_failures >= limit:
            self.halt(code if code in (EXIT_BOOT_ERROR, EXIT_APP_LOAD_ERROR) else EXIT_BOOT_ERROR,
                      f"{self.boot_failures} workers in a row died before becoming ready "
                      f"(last: {reason})")
            return
        self.log.error("Worker (pid:%d) died before becoming ready (%s); %d of %d allowed in a "
                       "row", worker.pid, reason, self.boot_failures, limit)
        self._schedule_respawn(now)

    def _schedule_respawn(self, now: float, uptime: float = 0.0) -> None:
        """Replace at once, unless workers keep dying young: then back off exponentially."""
        cfg = self.generation.settings if self.generation else self.settings
        backoff_max = cfg[s.RESPAWN_BACKOFF_MAX]
        young = uptime < cfg[s.RESPAWN_BACKOFF_UPTIME]
        if young and now - self.last_crash < max(2 * backoff_max, 1.0):
            self.crash_streak += 1
        else:
            self.crash_streak = 1
        self.last_crash = now
        if self.crash_streak > 1:
            delay = min(backoff_max, 0.1 * 2 ** (self.crash_streak - 2))
            self.spawn_not_before = max(self.spawn_not_before, now + delay)
            self.log.warning("Workers keep crashing (%d in a row): next start in %.1f s",
                             self.crash_streak, delay)

    def halt(self, code: int, reason: str) -> None:
        self.log.error("Shutting down: %s", reason)
        self.exit_code = code
        self.stop(graceful=True)

    def _check_stop(self, now: float) -> bool:
        """While stopping: True when done (every worker reaped)."""
        if not self.workers:
            return True
        if now >= self.stop_deadline:
            for worker in self.workers.values():
                if not worker.killed:
                    self.log.warning("Worker (pid:%d) still running at the shutdown deadline; "
                                     "SIGKILL", worker.pid)
                    worker.kill("shutdown deadline")
            self.stop_deadline = now + 5.0  # SIGKILL cannot be ignored: only reaping remains
        return False

    def _emergency_stop(self) -> None:
        for worker in self.workers.values():
            worker.signal(signal.SIGTERM)
        deadline = time.monotonic() + self._graceful_timeout()
        while self.workers and time.monotonic() < deadline:
            time.sleep(0.05)
            self._reap()
        for worker in self.workers.values():
            worker.signal(signal.SIGKILL)
        while self.workers and time.monotonic() < deadline + 5:
            time.sleep(0.05)
            self._reap()

    def _close_unused_listeners(self, extra: Sequence[Listener] = ()) -> None:
        used: set[int] = set()
        generations = [w.generation for w in self.workers.values()]
        if self.generation is not None:
            generations.append(self.generation)
        for generation in generations:
            used.update(id(listener) for listener in generation.listeners)
        for listener in [*self._listeners, *extra]:
            if id(listener) not in used:
                if listener in self._listeners:
                    self._listeners.remove(listener)
                self.log.info("Closing listener %s", listener.url())
                close_listener(listener, unlink=True)

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

    # ------------------------------------------------------------------------------------------
    # Introspection (status, metrics, control)

    def ready_workers(self) -> int:
        return sum(1 for w in self.workers.values()
                   if w.state == "ready" and w.generation is self.generation)

    def is_ready(self) -> bool:
        return not self.stopping and self.num_workers > 0 and self.ready_workers() >= self.num_workers
