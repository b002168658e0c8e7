"""The ``gthread`` worker: a pool of threads sharing one epoll poller, with keep-alive.

Every pool thread runs the same loop: wait on the shared epoll for *one* ready socket, then act on
it. Connection sockets are registered ``EPOLLONESHOT``, so a ready socket is delivered to exactly
one thread and stays disarmed until that thread re-arms it.

What the thread does depends on the connection's stage:
- handshake: advance the TLS handshake (non-blocking);
- waiting (idle keep-alive, or a request head arriving): read what is there without blocking and
  feed the sans-I/O connection; only a *complete* head is handled, by this same thread (no
  hand-off), so a client that sends its head slowly never holds a thread;
- draining (after an error or an unread body): discard input until end of input, then close.
After a response the thread re-arms the socket (or serves the next pipelined request already
buffered). The listening sockets are one-shot too: the thread that accepts one connection re-arms
the listener, then serves the new connection at once (its request is usually already there); the
connection enters the poller only when it has to wait.

The main thread does no I/O on connections: it handles signals, calls ``heartbeat.notify()``, and
every tick (<= 0.25 s) closes connections whose deadline passed: ``keep_alive`` for an idle
connection, ``timeout_header_read`` for a head (counted from the previous response or the accept),
``LINGER_SECONDS`` for a drain.

Invariants (the races are settled under one lock):
- A connection is IDLE (armed in the poller, owned by nobody), BUSY (owned by exactly one thread)
  or CLOSED. Only the thread that moved it IDLE -> BUSY touches its socket or its Connection; only
  IDLE connections are closed by the timer sweep. A stale readiness event for a reused descriptor
  is harmless: the claim fails, or the claimer finds nothing to read and re-arms.
- At most ``worker_connections`` connections are open; at the limit the listeners stay disarmed
  and new clients wait in the kernel's backlog.
- SIGTERM: the listeners close at once, idle keep-alive connections without pending input close
  (a connection that has not sent its first request yet gets ``STOP_GRACE`` to send it), requests in
  flight finish (answered with ``Connection: close``) until ``graceful_timeout``; then `run`
  returns. SIGHUP (retire, while sibling workers go on serving): the same, except that idle
  connections stay in the poller until their keep-alive deadline, so a request a client sends on
  one meanwhile is served (with ``Connection: close``) instead of cut off. SIGINT/SIGQUIT: `run`
  returns at once (pool threads are daemons).
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import threading
import time
from typing import Final

from tricorn.core.connection import Connection
from tricorn.core.errors import ProtocolError
from tricorn.core.events import NEED_DATA, Request
from tricorn.core.worker import EXIT_ABORTED, EXIT_BOOT_ERROR, EXIT_OK
from tricorn.core.writer import error_response

from .base import LINGER_SECONDS, STOP_GRACE, BaseWorker
from .handler import Channel
from .stream import RECV_SIZE, Stream
from .sync import is_tcp, local_address, tune

IDLE: Final = 0
BUSY: Final = 1
CLOSED: Final = 2

HANDSHAKE: Final = 0
WAITING: Final = 1
DRAINING: Final = 2

_IN: Final = select.EPOLLIN | select.EPOLLONESHOT | select.EPOLLRDHUP
_OUT: Final = select.EPOLLOUT | select.EPOLLONESHOT
_RESOURCE_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_DRAIN_LIMIT: Final = 1 << 20
_TICK: Final = 0.25
_monotonic = time.monotonic
_WOULD_BLOCK: Final = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Client:
    __slots__ = ("fd", "sock", "ch", "conn", "state", "stage", "deadline", "head_deadline",
                 "drained", "registered", "fresh")

    def __init__(self, fd: int, sock: socket.socket, stage: int, deadline: float) -> None:
        self.fd = fd
        self.sock = sock
        self.ch: Channel | None = None
        self.conn: Connection | None = None
        self.state = IDLE
        self.stage = stage
        self.deadline = deadline
        """When the sweep closes this connection if it is still IDLE."""
        self.head_deadline = deadline
        """The deadline once a request head has started arriving."""
        self.drained = 0
        self.registered = False
        """Added to the poller (a new connection is first served inline, unregistered)."""
        self.fresh = True
        """No request received yet: on SIGTERM it is owed one (its client may be sending it)."""


class ThreadWorker(BaseWorker):
    """``-k gthread`` / ``--threads N``: see the module docstring."""

    persistent = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._epoll: select.epoll | None = None
        self._lock = threading.Lock()
        self._clients: dict[int, _Client] = {}
        self._listeners: dict[int, tuple[socket.socket, object | None, bool]] = {}
        self._accept_paused = False
        self._accept_retry_at = 0.0
        self._stop_started = 0.0
        self.exit_code = EXIT_OK

    # ------------------------------------------------------------------------------------- run

    def run(self) -> int:
        code = self.boot()
        if code is not None:
            return code
        try:
            self.install_signals()
            self._epoll = select.epoll()
            for listener in self.listeners:
                listener.setblocking(False)
                self._listeners[listener.fileno()] = (listener, local_address(listener),
                                                      is_tcp(listener))
                self._epoll.register(listener.fileno(), _IN)
            for i in range(self.threads):
                t = threading.Thread(target=self._thread_main, name=f"tricorn-wsgi-{i}",
                                     daemon=True)
                t.start()
        except Exception:
            self.log.exception("worker failed to boot")
            return EXIT_BOOT_ERROR
        try:
            self._main_loop()
        finally:
            if self.quitting:
                self.on_quick_stop()
            self._close_listeners()
            self._close_all()
            self.restore_signals()
        return self.exit_code

    def _main_loop(self) -> None:
        wake = select.poll()
        wake_fd = self._wake_r.fileno() if self._wake_r is not None else -1
        if wake_fd >= 0:
            wake.register(wake_fd, select.POLLIN)
        hb = self.heartbeat
        tick = min(_TICK, self.notify_interval)
        hb.ready()
        while True:
            hb.notify()
            if wake.poll(tick * 1000.0):
                self.drain_wakeups()
            if self.quitting:
                return
            now = _monotonic()
            if self.parent_gone():
                self.log.warning("parent changed, shutting down")
                return
            if self.stopping:
                if not self._stop_started:
                    self._begin_stop(now)
                if self._stopped(now):
                    return
            elif self._accept_retry_at and now >= self._accept_retry_at:
                self._accept_retry_at = 0.0
                self._arm_listeners()
            self._sweep(now)

    # ------------------------------------------------------------------------- pool threads

    def _thread_main(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        poll = epoll.poll
        listeners = self._listeners
        clients = self._clients
        lock = self._lock
        while True:
            try:
                events = poll(-1, 1)
            except (OSError, ValueError):
                return  # the poller was closed: the worker is exiting
            for fd, _ in events:
                if fd in listeners:
                    self._accept(fd)
                    continue
                c = clients.get(fd)
                if c is None:
                    continue
                with lock:
                    if c.state != IDLE:
                        continue
                    c.state = BUSY
                try:
                    self._on_ready(c)
                except Exception:
                    self.log.exception("unexpected error on a connection; closing it")
                    self._close(c)

    def _on_ready(self, c: _Client) -> None:
        stage = c.stage
        if stage == WAITING:
            self._read(c)
        elif stage == HANDSHAKE:
            self._handshake(c)
        else:
            self._drain(c)

    # ------------------------------------------------------------------------------- accepting

    def _arm_listeners(self) -> None:
        epoll = self._epoll
        if epoll is None or self.stopping:
            return
        for fd in self._listeners:
            try:
                epoll.modify(fd, _IN)
            except OSError:
                pass

    def _accept(self, fd: int) -> None:
        """Accept one connection, re-arm the listener (another thread takes the next one), then
        serve the new connection right here: its request is usually already in, and a connection
        that answers it and closes never touches the poller."""
        entry = self._listeners.get(fd)
        epoll = self._epoll
        if entry is None or epoll is None or self.stopping:
            return
        listener, local, tcp = entry
        with self._lock:
            if len(self._clients) >= self.max_connections:
                self._accept_paused = True
                return  # stay disarmed until a connection closes
        try:
            sock, addr = listener.accept()
        except BlockingIOError:
            sock = None
        except OSError as exc:
            sock = None
            if exc.errno in _RESOURCE_ERRORS:
                self.log.warning("accept() failed: %s; retrying soon", exc)
                self._accept_retry_at = _monotonic() + 0.5
                return
            if self.stopping or exc.errno == errno.EBADF:
                return
        try:
            epoll.modify(fd, _IN)
        except OSError:
            pass
        if sock is None:
            return
        try:
            c = self._add(sock, addr, local, tcp)
        except Exception:
            self.log.exception("cannot set up an accepted connection")
            sock.close()
            return
        if c is not None:
            try:
                self._on_ready(c)
            except Exception:
                self.log.exception("unexpected error on a connection; closing it")
                self._close(c)

    def _add(self, sock: socket.socket, addr: object, local: object | None, tcp: bool
             ) -> _Client | None:
        """A BUSY client for a new connection (owned by the caller, not yet in the poller)."""
        handler = self.handler
        if handler is None:
            sock.close()
            return None
        tune(sock, tcp)
        now = _monotonic()
        deadline = now + self.header_timeout
        ctx = self.ssl_context
        tls = ctx is not None
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        fd = sock.fileno()
        c = _Client(fd, sock, HANDSHAKE if tls else WAITING, deadline)
        c.state = BUSY
        conn = handler.connection(self.climits)
        info = handler.builder.for_connection(
            addr, local if local is not None else sock.getsockname(), tls=tls)
        c.conn = conn
        c.ch = Channel(sock, Stream(sock, self.read_timeout, self.write_timeout), conn, info)
        with self._lock:
            self._clients[fd] = c
        return c

    # -------------------------------------------------------------------------------- stages

    def _handshake(self, c: _Client) -> None:
        sock = c.sock
        try:
            sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._rearm(c, _IN)
            return
        except ssl.SSLWantWriteError:
            self._rearm(c, _OUT)
            return
        except (ssl.SSLError, OSError) as exc:
            self.log.debug("TLS handshake failed: %s", exc)
            self._close(c)
            return
        c.stage = WAITING
        self._read(c)

    def _read(self, c: _Client) -> None:
        conn = c.conn
        if conn is None:
            self._close(c)
            return
        sock = c.sock
        try:
            data = sock.recv(RECV_SIZE)
        except _WOULD_BLOCK as exc:
            self._rearm(c, _OUT if isinstance(exc, ssl.SSLWantWriteError) else _IN)
            return
        except OSError:
            self._close(c)
            return
        if not data:
            self._close(c)  # end of input between requests (or inside a head: nothing to answer)
            return
        if not conn.buffered:
            c.deadline = c.head_deadline  # a head has started: the head deadline applies
        conn.receive_data(data)
        if c.ch is not None and c.ch.stream.tls:
            while sock.pending():  # type: ignore[attr-defined]
                try:
                    more = sock.recv(RECV_SIZE)
                except OSError:  # would block, or failed: the next event will tell
                    break
                if not more:
                    break
                conn.receive_data(more)
        self._process(c)

    def _process(self, c: _Client) -> None:
        conn = c.conn
        ch = c.ch
        handler = self.handler
        if conn is None or ch is None or handler is None:
            self._close(c)
            return
        while True:
            try:
                ev = conn.next_event()
            except ProtocolError as exc:
                handler.refuse(ch, exc.status, exc.reason)
                self._start_drain(c)
                return
            if type(ev) is Request:
                c.fresh = False
                keep = handler.handle(ch, ev)
                # Retiring, a response that promised persistence (its head went out before the
                # stop) keeps its connection: the client may send on it at once.
                if not keep or not conn.keep_alive or (self.stopping and not self.retiring):
                    if conn.their_done and not conn.buffered:
                        self._close(c)
                    else:
                        self._start_drain(c)
                    return
                conn.start_next_cycle()
                now = _monotonic()
                c.head_deadline = now + self.header_timeout
                if conn.buffered:
                    c.deadline = c.head_deadline
                    continue  # a pipelined request is already here
                c.deadline = now + self.keep_alive
                if ch.stream.pending():
                    self._read(c)
                    return
                self._rearm(c, _IN)
                return
            if ev is NEED_DATA:
                self._rearm(c, _IN)
                return
            self._close(c)  # ConnectionClosed
            return

    def _start_drain(self, c: _Client) -> None:
        """Half-close and discard input in the poller until end of input or the deadline."""
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(c)
            return
        c.stage = DRAINING
        c.deadline = _monotonic() + LINGER_SECONDS
        self._rearm(c, _IN)

    def _drain(self, c: _Client) -> None:
        sock = c.sock
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except _WOULD_BLOCK:
                self._rearm(c, _IN)
                return
            except OSError:
                break
            if not data:
                break
            c.drained += len(data)
            if c.drained > _DRAIN_LIMIT:
                break
        self._close(c)

    # ---------------------------------------------------------------------- ownership changes

    def _rearm(self, c: _Client, events: int) -> None:
        epoll = self._epoll
        with self._lock:
            if c.state == CLOSED:
                return
            c.state = IDLE
            try:
                if epoll is None:
                    raise OSError(errno.EBADF, "poller closed")
                if c.registered:
                    epoll.modify(c.fd, events)
                else:
                    epoll.register(c.fd, events)
                    c.registered = True
                return
            except OSError:
                c.state = BUSY
        self._close(c)

    def _close(self, c: _Client) -> None:
        resume = False
        with self._lock:
            if c.state == CLOSED:
                return
            c.state = CLOSED
            if self._clients.get(c.fd) is c:
                del self._clients[c.fd]
            if self._accept_paused and len(self._clients) < self.max_connections:
                self._accept_paused = False
                resume = True
            try:
                c.sock.close()
            except OSError:
                pass
        if resume:
            self._arm_listeners()

    # ---------------------------------------------------------------------------------- timers

    def _sweep(self, now: float) -> None:
        expired: list[_Client] = []
        with self._lock:
            for c in self._clients.values():
                if c.state == IDLE and c.deadline <= now:
                    c.state = BUSY
                    expired.append(c)
        handler = self.handler
        for c in expired:
            conn = c.conn
            if (c.stage == WAITING and conn is not None and conn.buffered
                    and handler is not None):
                try:  # a head started and did not finish in time
                    c.sock.send(error_response(408, handler.server_line))
                except (OSError, ValueError):
                    pass
            self._close(c)

    def _begin_stop(self, now: float) -> None:
        self._stop_started = now
        if self.handler is not None:
            self.handler.closing = True
        self._close_listeners()
        if self.retiring:
            return  # idle connections keep their deadlines (see the module docstring)
        idle: list[_Client] = []
        with self._lock:
            for c in self._clients.values():
                if c.state == IDLE and c.stage == WAITING and not (c.conn and c.conn.buffered):
                    c.state = BUSY
                    idle.append(c)
        for c in idle:
            if c.fresh or self._has_input(c.sock):
                c.deadline = min(c.deadline, now + STOP_GRACE)
                self._rearm(c, _IN)  # a request may be on its way: serve it, with close
            else:
                self._close(c)

    def _stopped(self, now: float) -> bool:
        with self._lock:
            if not self._clients:
                return True
            busy = any(c.state == BUSY for c in self._clients.values())
            if not busy and not self.retiring and now - self._stop_started >= STOP_GRACE:
                return True
        if now - self._stop_started >= self.graceful_timeout:
            if busy:
                self.log.warning("graceful timeout (%.1f s) expired with requests in flight",
                                 self.graceful_timeout)
                self.exit_code = EXIT_ABORTED
            return True
        return False

    @staticmethod
    def _has_input(sock: socket.socket) -> bool:
        try:
            # the raw descriptor (an SSLSocket refuses flags): any byte, even of a TLS record
            return bool(socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (OSError, ValueError):
            return False

    def _close_listeners(self) -> None:
        epoll = self._epoll
        for fd, (listener, _, _) in list(self._listeners.items()):
            if epoll is not None:
                try:
                    epoll.unregister(fd)
                except (OSError, ValueError):
                    pass
            try:
                listener.close()
            except OSError:
                pass
        self._listeners.clear()

    def _close_all(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            for c in clients:
                c.state = CLOSED
        for c in clients:
            try:
                c.sock.close()
            except OSError:
                pass
        epoll = self._epoll
        self._epoll = None
        if epoll is not None:
            epoll.close()
