"""The forked worker's side: from ``os.fork()`` returning 0 to ``os._exit``.

`run_child` turns the fork of the master into a worker process: parent-death detection, process
title, per-worker ``SO_REUSEPORT`` sockets, privileges, the ``post_fork`` hook, the process-level
signals (`tricorn.core.worker.install_process_signals`), then ``WorkerClass(context).run()``.

Parent death is detected twice: ``PR_SET_PDEATHSIG`` (Linux: the kernel sends SIGTERM when the
master dies) and a pipe whose write end only the master holds; a daemon thread blocked on the
read end sees EOF when the master is gone, sends SIGTERM (where there is no PDEATHSIG) and, if the
worker is still there after ``graceful_timeout`` + ``abort_timeout``, ends it with ``os._exit``.

Invariants:
- The child never returns into the master's code: every path ends in ``os._exit`` with the worker
  contract's exit code (0, 1 after SIGABRT, 3 boot error, 4 app load error).
- An exception before ``heartbeat.ready()`` exits 3 (4 for `AppLoadError`); the traceback is
  logged first, so the reason is never lost (Gunicorn #3111).
- The ``worker_exit`` hook runs on every path that reaches Python code after ``post_fork``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tricorn.core.apploader import AppLoadError
from tricorn.core.heartbeat import WorkerHeartbeat
from tricorn.core.logs import Logs
from tricorn.core.settings import BindAddress
from tricorn.core.sockets import ListenError, listen
from tricorn.core.worker import (
    EXIT_APP_LOAD_ERROR,
    EXIT_BOOT_ERROR,
    EXIT_OK,
    WorkerContext,
    install_process_signals,
)

from . import osutil
from .process import WorkerProcess
from .reloader import start_reloader

__all__ = ["ChildPlan", "run_child"]


@dataclass(eq=False)
class ChildPlan:
    """What the master hands its forked child (besides the inherited memory)."""

    worker: WorkerProcess
    server: object
    """The arbiter, as the ``server`` argument of hooks."""
    logs: Logs
    wake_fd: int
    parent_fd: int
    ppid: int
    close_master_state: Callable[[], None]
    reuse_port: bool
    backlog: int
    uid: int | None
    gid: int | None
    umask: int
    title: str
    reload: bool
    reload_interval: float
    graceful_timeout: float
    abort_timeout: float
    ssl_context: object | None


def _watch_parent(fd: int, pdeathsig: bool, grace: float, log: logging.Logger) -> None:
    def watch() -> None:
        while True:
            try:
                data = os.read(fd, 1)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                break
        log.warning("worker %d: the master is gone; stopping", os.getpid())
        if not pdeathsig:
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(EXIT_OK)

    threading.Thread(target=watch, name="tricorn-parent-watch", daemon=True).start()


def _own_sockets(plan: ChildPlan) -> list[socket.socket]:
    """The sockets this worker accepts on: with reuse_port, a socket of its own per TCP address
    (the kernel spreads connections over them) plus the shared ones; else the shared ones."""
    shared = [listener.sock for listener in plan.worker.generation.listeners]
    if not plan.reuse_port:
        return shared
    own: list[socket.socket] = []
    for listener in plan.worker.generation.listeners:
        address = listener.address
        if address.kind != "tcp":
            continue
        mine = listen(
            BindAddress("tcp", host=address.host, port=address.port),
            backlog=plan.backlog,
            reuse_port=True,
        )
        own.append(mine.sock)
    return own + shared


def run_child(plan: ChildPlan) -> None:
    """Become the worker; never returns."""
    code = EXIT_BOOT_ERROR
    worker = plan.worker
    log = plan.logs.error
    context: WorkerContext | None = None
    try:
        plan.close_master_state()
        pdeathsig = osutil.set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != plan.ppid:  # the master died before prctl took effect
            os._exit(EXIT_OK)
        _watch_parent(plan.parent_fd, pdeathsig, plan.graceful_timeout + plan.abort_timeout, log)
        worker.pid = os.getpid()
        if plan.umask:
            os.umask(plan.umask)
        osutil.set_proc_title(plan.title)
        generation = worker.generation
        try:
            sockets = _own_sockets(plan)
        except ListenError as exc:
            log.error("worker %d: %s", worker.pid, exc)
            os._exit(EXIT_BOOT_ERROR)
        osutil.drop_privileges(plan.uid, plan.gid)
        generation.hooks.call("post_fork", plan.server, worker)

        holder: list[WorkerContext] = []

        def on_ready() -> None:
            if holder:
                generation.hooks.call("post_worker_init", holder[0])

        heartbeat = WorkerHeartbeat(worker.slot, plan.wake_fd, on_ready=on_ready)
        context = WorkerContext(
            sockets=tuple(sockets),
            settings=generation.settings,
            app_spec=generation.app_spec,
            heartbeat=heartbeat,
            app=generation.app,
            ppid=plan.ppid,
            logs=plan.logs,
            hooks=generation.hooks,
            age=worker.age,
            ssl_context=plan.ssl_context,
        )
        holder.append(context)
        install_process_signals(context)
        if plan.reload:
            start_reloader(plan.reload_interval, log)
        instance = generation.worker_class(context)
        result = instance.run()
        code = result if isinstance(result, int) else EXIT_OK
    except AppLoadError as exc:
        log.error("worker %d: %s", os.getpid(), exc)
        code = EXIT_APP_LOAD_ERROR
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        code = EXIT_BOOT_ERROR if worker.slot.read().ready_at == 0 else 1
    finally:
        try:
            if context is not None:
                worker.generation.hooks.call("worker_exit", plan.server, context)
            _flush(plan.logs)
        finally:
            os._exit(code)


def _flush(logs: Logs) -> None:
    for handler in logging.getLogger("tricorn").handlers:
        try:
            handler.flush()
        except Exception:
            pass
    if logs.access is not None:
        logs.access.flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
