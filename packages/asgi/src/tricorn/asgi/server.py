"""The server engine: lifespan, listening, the periodic tick, signals and the two kinds of stop.

`Server.serve()` runs in the event loop: lifespan startup (a failure returns `EXIT_BOOT_FAILED`),
one asyncio server per listening socket, then waits for a stop. `run()` is the synchronous entry
point used by the worker (worker.py) for both the standalone command and the arbiter's children.

Stops (design §3):
- graceful (SIGTERM): stop accepting at once; close idle keep-alive connections at once; let
  in-flight requests finish (their responses say ``connection: close``) for up to
  `graceful_timeout` seconds; then cancel what is left; then lifespan shutdown;
- retire (SIGHUP: the arbiter replaces this worker while others keep serving; max requests
  reached): a graceful stop that does not close idle keep-alive connections at once, since their
  clients may be sending on them right now: each is served its next request (with
  ``connection: close``) or closes at its keep-alive deadline, whichever comes first;
- in both graceful kinds, every open WebSocket (`ServerState.upgraded`) is sent a close frame with
  code 1001 (going away) and its application a ``websocket.disconnect`` with 1001; the connection
  closes after the client's close frame or a timeout, within the same wait;
- quick (SIGINT, SIGQUIT, also during a graceful stop): the same without the wait. A repeated
  SIGTERM changes nothing (a process group signal and the arbiter's may both arrive).

Invariants:
- Signal handlers only record the request and wake the loop (`loop.add_signal_handler`); all work
  happens in the loop. Handlers are removed when `serve()` returns. SIGUSR1 (reopen logs) and
  SIGABRT belong to the process harness (`tricorn.core.worker.install_process_signals`).
- The tick (a `loop.call_later` chain, no thread) runs every `tick_interval` seconds: it expires
  connection deadlines, calls `heartbeat()` (so a blocked loop stops the heartbeat), and flushes the
  access log. It never does per-request work.
- Waiting for the drain is event-driven (`ServerState.drained` wakes it), not polled.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from tricorn.core.worker import RETIRE_SIGNAL

from .accept import Acceptor
from .lifespan import Lifespan
from .protocol import HttpProtocol
from .state import ServerState

log = logging.getLogger("tricorn.error")

EXIT_OK = 0
EXIT_BOOT_FAILED = 3
"""Lifespan startup failed (design §3): the arbiter halts instead of respawning."""

CANCEL_WAIT = 5.0
"""After the graceful timeout: how long cancelled requests get to unwind (their finally blocks)
before the connections are aborted anyway. A safety bound, not a tuning knob."""

GRACEFUL_SIGNALS = (signal.SIGTERM,)
RETIRE_SIGNALS = (RETIRE_SIGNAL,)
QUICK_SIGNALS = (signal.SIGINT, signal.SIGQUIT)

# How `Server.stop` was asked to stop (the result of `Server._stop`).
QUICK = 0
GRACEFUL = 1
RETIRE = 2


def tick_interval(*timeouts: float) -> float:
    """A quarter of the shortest positive timeout, between 5 ms and 1 s."""
    shortest = min((t for t in timeouts if t > 0), default=4.0)
    return max(0.005, min(1.0, shortest / 4))


class Server:
    """Serves `state.app` on `sockets` until stopped (see the module docstring)."""

    def __init__(
        self,
        state: ServerState,
        sockets: Sequence[socket.socket],
        *,
        lifespan: Lifespan,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 2048,
        graceful_timeout: float = 30.0,
        heartbeat: Callable[[], None] | None = None,
        on_ready: Callable[[], None] | None = None,
        on_quick: Callable[[], object] | None = None,
        handle_signals: bool = True,
        fair_accept: bool = False,
    ) -> None:
        self.state = state
        self.sockets = list(sockets)
        self.lifespan = lifespan
        self.ssl_context = ssl_context
        self.backlog = backlog
        self.graceful_timeout = graceful_timeout
        self.heartbeat = heartbeat
        self.on_ready = on_ready
        self.on_quick = on_quick
        self.handle_signals = handle_signals
        self.fair_accept = fair_accept
        """Accept a few connections per wake-up (accept.py): the sockets are shared with sibling
        workers. Otherwise the loop's native server accepts."""
        self.tick = tick_interval(
            state.timeout_header_read, state.keep_alive, state.timeout_body_read,
            state.timeout_write, state.timeout_linger,
        )
        self.servers: list[asyncio.AbstractServer] = []
        self.acceptors: list[Acceptor] = []
        self.started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[int] | None = None  # result: QUICK, GRACEFUL or RETIRE
        self._drained: asyncio.Future[None] | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._signals: list[int] = []

    # ---------------------------------------------------------------------------------- control

    def stop_threadsafe(self, graceful: bool = True, *, retire: bool = False) -> None:
        """`stop` from another thread (tests, embedding)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: self.stop(graceful, retire=retire))

    def stop(self, graceful: bool = True, *, retire: bool = False) -> None:
        """Ask the server to stop (idempotent; a quick stop overrides a graceful one). `retire`
        keeps idle keep-alive connections until their next request or deadline (see the module
        docstring). Call from the loop thread, or through `loop.call_soon_threadsafe`."""
        stop = self._stop
        if stop is None:
            return
        if not stop.done():
            stop.set_result(QUICK if not graceful else RETIRE if retire else GRACEFUL)
        elif not graceful and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)  # a second signal ends the graceful wait

    def _on_signal(self, signum: int) -> None:
        graceful = signum not in QUICK_SIGNALS
        if not graceful and self.on_quick is not None:
            self.on_quick()
        name = signal.Signals(signum).name
        if graceful and self._stop is not None and self._stop.done():
            # a repeated SIGTERM (process group + arbiter) changes nothing
            log.debug("Received %s: already stopping", name)
            return
        retire = signum in RETIRE_SIGNALS
        log.info("Received %s: %s", name,
                 "retiring" if retire else "stopping gracefully" if graceful else "stopping now")
        self.stop(graceful=graceful, retire=retire)

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in (*GRACEFUL_SIGNALS, *RETIRE_SIGNALS, *QUICK_SIGNALS):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError) as exc:
                log.warning("Cannot handle %s on this event loop: %s",
                            signal.Signals(signum).name, exc)
                continue
            self._signals.append(signum)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals.clear()

    # ------------------------------------------------------------------------------- the run

    async def serve(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        state = self.state
        state.on_max_requests = self._max_requests
        state.task_factory_free = loop.get_task_factory() is None
        self._install_signals(loop)
        try:
            if not await self.lifespan.startup():
                log.error("Application startup failed; exiting")
                await self.lifespan.shutdown()
                return EXIT_BOOT_FAILED
            if self._stop.done() and self._stop.result() == QUICK:
                await self.lifespan.shutdown()
                return EXIT_OK
            tls = self.ssl_context
            for sock in self.sockets:
                if self.fair_accept:  # siblings share this socket: see accept.py
                    acceptor = Acceptor(
                        loop, sock, lambda: HttpProtocol(state, loop), ssl_context=tls,
                        handshake_timeout=state.timeout_header_read if tls is not None else None)
                    acceptor.start()
                    self.acceptors.append(acceptor)
                    continue
                server = await loop.create_server(
                    lambda: HttpProtocol(state, loop),
                    sock=sock,
                    backlog=self.backlog,
                    ssl=tls,
                    # the handshake precedes connection_made: bound it like a request head
                    ssl_handshake_timeout=state.timeout_header_read if tls is not None else None,
                )
                self.servers.append(server)
            self.started = True
            # Everything alive now (modules, the app, its startup state) lives as long as the
            # process: move it out of the collector's reach, so that full collections scan only
            # what requests allocate (a 256-connection sleep benchmark: p99 19-21 -> 16 ms).
            gc.collect()
            gc.freeze()
            self._tick_handle = loop.call_later(self.tick, self._on_tick)
            if self.heartbeat is not None:
                self.heartbeat()
            if self.on_ready is not None:
                self.on_ready()
            await self._shutdown(await self._stop)
            return EXIT_OK
        finally:
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            self._remove_signals(loop)

    def _max_requests(self) -> None:
        log.info("Maximum request limit of %d reached; retiring", self.state.max_requests)
        self.stop(graceful=True, retire=True)

    def _on_tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        for proto in list(self.state.connections):
            if proto.deadline and now >= proto.deadline:
                proto.check_deadline(now)
        if self.heartbeat is not None:
            self.heartbeat()
        access_log = self.state.access_log
        if access_log is not None and not access_log.autoflush:
            access_log.flush()
        self._tick_handle = loop.call_later(self.tick, self._on_tick)

    async def _shutdown(self, mode: int) -> None:
        state = self.state
        loop = asyncio.get_running_loop()
        for server in self.servers:
            server.close()
        for acceptor in self.acceptors:
            acceptor.close()
        state.shutting_down = True
        keep_idle = mode == RETIRE
        for proto in list(state.connections):
            proto.shutdown(keep_idle)
        if mode != QUICK:
            for upgraded in list(state.upgraded):  # WebSockets: close 1001, retiring or not
                upgraded.shutdown()
        if mode != QUICK and self.graceful_timeout > 0 and not state.drained():
            log.info("Waiting for %d request(s) and %d connection(s) to finish (up to %ss)",
                     len(state.tasks), len(state.connections) + len(state.upgraded),
                     self.graceful_timeout)
            drained = self._drained = loop.create_future()
            def on_drained() -> None:
                if not drained.done():
                    drained.set_result(None)

            state.on_drained = on_drained
            try:
                await asyncio.wait_for(drained, self.graceful_timeout)
            except TimeoutError:
                if state.tasks:
                    log.warning("Graceful timeout: cancelling %d request(s)", len(state.tasks))
            finally:
                state.on_drained = None
        await self._cancel_remaining()
        await self.lifespan.shutdown()
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except TimeoutError:
                pass

    async def _cancel_remaining(self) -> None:
        state = self.state
        tasks: list[asyncio.Task[Any]] = [
            c.task for c in list(state.tasks) if c.task is not None and not c.task.done()]
        for task in tasks:
            task.cancel()
        for upgraded in list(state.upgraded):  # cancels its application, drops the connection
            app_task = upgraded.abort()
            if app_task is not None:
                tasks.append(app_task)
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT)
        for proto in list(state.connections):
            if not proto.closed:
                proto.transport.abort()
        # let the transports run connection_lost()
        await asyncio.sleep(0)


def run(main: Callable[[], Coroutine[Any, Any, int]],
        loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """Run `main()` in a new event loop (made by `loop_factory`), clean up, return its exit code."""
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


__all__ = ["EXIT_BOOT_FAILED", "EXIT_OK", "Server", "run", "tick_interval"]
