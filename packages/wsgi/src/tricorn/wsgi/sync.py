"""The ``sync`` worker: one connection, one request at a time (Gunicorn's sync semantics).

The loop polls the listening sockets (and the signal wake-up socket), accepts, and serves each
connection to the end before accepting the next. Connections are not kept alive: each response
says ``Connection: close``, except while further requests the client pipelined are already
buffered, which are answered in order first. Meant to sit behind a buffering proxy (nginx): a slow
client holds the process for up to ``timeout_header_read`` / ``timeout_body_read`` /
``timeout_write``.

Invariants:
- Every wait has a deadline: the request head must arrive within ``timeout_header_read`` of the
  accept (a slow head is closed, with 408 if it had started), each body read within
  ``timeout_body_read`` and each response write within ``timeout_write``.
- After a 4xx for the head, and whenever unread input may remain, the connection is closed
  lingering (half-close, drain briefly, close) so the response is not lost to a reset.
- ``heartbeat.notify()`` runs at least every ``notify_interval`` while idle and after every
  connection (a request longer than the arbiter's timeout gets the worker killed, as in Gunicorn).
- SIGTERM (and SIGHUP, retire): stop accepting, finish the connection in hand (its response
  closes), return 0. A connection accepted whose request has not arrived yet is owed a response
  all the same (its client may be sending right now: closing it would reset the request): it
  gets `STOP_GRACE` more seconds to send its head. SIGINT/SIGQUIT: return at once, interrupting
  the application if it is running.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import time
from types import FrameType
from typing import Final

from tricorn.core.errors import ProtocolError
from tricorn.core.events import NEED_DATA, Request
from tricorn.core.worker import EXIT_BOOT_ERROR, EXIT_OK
from tricorn.core.writer import error_response

from .base import LINGER_SECONDS, STOP_GRACE, BaseWorker, QuickExit
from .errors import ClientDisconnected
from .handler import Channel
from .stream import Stream, linger_close

_RESOURCE_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_monotonic = time.monotonic


def tune(sock: socket.socket, tcp: bool) -> None:
    """An accepted socket: non-blocking, and TCP_NODELAY on TCP."""
    sock.setblocking(False)
    if tcp:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def is_tcp(listener: socket.socket) -> bool:
    return listener.family in (socket.AF_INET, socket.AF_INET6)


def local_address(listener: socket.socket) -> object | None:
    """The listener's address when every connection it accepts has that same local address
    (not a wildcard bind), else None (ask each accepted socket)."""
    try:
        name: object = listener.getsockname()
    except OSError:
        return None
    if isinstance(name, tuple) and name[0] in ("0.0.0.0", "::", ""):
        return None
    return name


class _StopWaiting(BaseException):
    """Raised by SIGTERM's handler while waiting for the first byte of a request: the wait goes on
    for at most `STOP_GRACE` seconds."""


class SyncWorker(BaseWorker):
    """``-k sync``: see the module docstring."""

    persistent = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.idle_wait = False
        """Waiting for the first byte of a request on the connection in hand."""

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        super()._on_term(signum, frame)
        if self.busy:
            self._close_listeners()  # refuse new connections now, not after this one
            if self.idle_wait:
                self.idle_wait = False
                raise _StopWaiting()

    def run(self) -> int:
        code = self.boot()
        if code is not None:
            return code
        try:
            self.install_signals()
            for listener in self.listeners:
                listener.setblocking(False)
        except Exception:
            self.log.exception("worker failed to boot")
            return EXIT_BOOT_ERROR
        try:
            self._serve()
        except QuickExit:
            pass
        finally:
            if self.quitting:
                self.on_quick_stop()
            self._close_listeners()
            self.restore_signals()
        return EXIT_OK

    def _close_listeners(self) -> None:
        for listener in self.listeners:
            try:
                listener.close()
            except OSError:
                pass

    def _serve(self) -> None:
        poller = select.poll()
        by_fd: dict[int, tuple[socket.socket, object | None, bool]] = {}
        for listener in self.listeners:
            by_fd[listener.fileno()] = (listener, local_address(listener), is_tcp(listener))
            poller.register(listener.fileno(), select.POLLIN)
        wake_fd = self._wake_r.fileno() if self._wake_r is not None else -1
        if wake_fd >= 0:
            poller.register(wake_fd, select.POLLIN)
        hb = self.heartbeat
        timeout_ms = self.notify_interval * 1000.0
        backoff = 0.0
        hb.ready()
        while not self.stopping:
            hb.notify()
            if self.parent_gone():
                self.log.warning("parent changed, shutting down")
                return
            if backoff:
                time.sleep(backoff)
                backoff = 0.0
            for fd, _ in poller.poll(timeout_ms):
                if fd == wake_fd:
                    self.drain_wakeups()
                    continue
                entry = by_fd.get(fd)
                if entry is None:
                    continue
                listener, local, tcp = entry
                while not self.stopping:
                    try:
                        sock, addr = listener.accept()
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno in _RESOURCE_ERRORS:
                            self.log.warning("accept() failed: %s; retrying soon", exc)
                            backoff = 0.5
                        break
                    self._serve_connection(sock, addr, local, tcp)
                    hb.notify()

    def _serve_connection(self, sock: socket.socket, addr: object, local: object | None,
                          tcp: bool) -> None:
        handler = self.handler
        if handler is None:
            sock.close()
            return
        self.busy = True
        linger = False
        try:
            tune(sock, tcp)
            deadline = _monotonic() + self.header_timeout
            tls = self.ssl_context is not None
            if tls:
                wrapped = self._handshake(sock, deadline)
                if wrapped is None:
                    return
                sock = wrapped
            conn = handler.connection(self.climits)
            stream = Stream(sock, self.read_timeout, self.write_timeout)
            info = handler.builder.for_connection(
                addr, local if local is not None else sock.getsockname(), tls=tls)
            ch = Channel(sock, stream, conn, info)
            while True:
                try:
                    ev = conn.next_event()
                except ProtocolError as exc:
                    handler.refuse(ch, exc.status, exc.reason)
                    linger = True
                    return
                if ev is NEED_DATA:
                    self.idle_wait = not conn.buffered and conn.request is None
                    try:
                        data = stream.recv(deadline)
                    except _StopWaiting:
                        deadline = min(deadline, _monotonic() + STOP_GRACE)
                        continue
                    except ClientDisconnected as exc:
                        if conn.buffered and exc.errno == errno.ETIMEDOUT:
                            self._send_quietly(sock, error_response(408, handler.server_line))
                            linger = True
                        return
                    finally:
                        self.idle_wait = False
                    conn.receive_data(data)
                    continue
                if type(ev) is Request:
                    keep = handler.handle(ch, ev)
                    if not keep or not conn.keep_alive:
                        linger = not conn.their_done or conn.buffered > 0
                        return
                    conn.start_next_cycle()
                    if not conn.buffered:
                        return
                    deadline = _monotonic() + self.header_timeout
                    continue
                return  # ConnectionClosed (or PAUSED: cannot happen here)
        except (ClientDisconnected, _StopWaiting):
            return
        finally:
            self.busy = False
            self.idle_wait = False
            if linger:
                linger_close(sock, LINGER_SECONDS)
            else:
                try:
                    sock.close()
                except OSError:
                    pass

    def _handshake(self, sock: socket.socket, deadline: float) -> ssl.SSLSocket | None:
        ctx = self.ssl_context
        if ctx is None:
            return None
        try:
            tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            sock.close()
            return None
        stream = Stream(tls, self.read_timeout, self.write_timeout)
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                wait = select.POLLIN
            except ssl.SSLWantWriteError:
                wait = select.POLLOUT
            except (ssl.SSLError, OSError) as exc:
                self.log.debug("TLS handshake failed: %s", exc)
                tls.close()
                return None
            try:
                stream.wait(wait, deadline)
            except ClientDisconnected:
                tls.close()
                return None

    @staticmethod
    def _send_quietly(sock: socket.socket, data: bytes) -> None:
        try:
            sock.send(data)
        except (OSError, ValueError):
            pass
