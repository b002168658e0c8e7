"""Fair accepting for workers that share one listening socket with their siblings.

asyncio's and uvloop's servers accept every queued connection each time the listening socket is
readable. Under the arbiter every worker waits on the same socket, so the first one to wake takes a
whole burst: wrk's 64 connections split 56/8 between two workers, and the busy one saturates its
core while the other idles (and reliability row A17, 1000 connections at once over 4 workers, sees a
worker starve). `Acceptor` takes at most `batch` connections per readiness event and goes back to
the loop, yielding the CPU after a full batch so that a sibling woken by the same event gets to
run; epoll is level-triggered, so what is left wakes this worker again on its next pass, and any
idle sibling at once. The sync and gthread workers accept one connection per wake-up too.

It costs a few microseconds per *connection* (Python's accept, a task for
``connect_accepted_socket``), nothing per request; the standalone server (no siblings) keeps the
loop's native server.

Invariants:
- A connection is handed to the loop with ``connect_accepted_socket`` (the protocol factory, TLS
  with its handshake deadline); one that fails there is closed and logged at debug level.
- Running out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses accepting for
  `RETRY_AFTER` seconds instead of spinning; connections wait in the kernel's backlog.
- `close` stops accepting at once and closes this process's descriptor of the listening socket,
  as the loop's native server does (the socket lives on in the siblings and the master; once the
  last descriptor is closed, new connections are refused, not queued); connections already handed
  over are the protocol's business.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import Final

log = logging.getLogger("tricorn.error")

RETRY_AFTER: Final = 0.5
DEFAULT_BATCH: Final = 4
_RESOURCE_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Acceptor:
    """Accepts on one listening socket for the running loop (see the module docstring)."""

    __slots__ = ("loop", "sock", "factory", "ssl_context", "handshake_timeout", "batch", "closed",
                 "_fd")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 factory: Callable[[], asyncio.Protocol], *,
                 ssl_context: ssl.SSLContext | None = None, handshake_timeout: float | None = None,
                 batch: int = DEFAULT_BATCH) -> None:
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.batch = batch
        self.closed = False
        self._fd = sock.fileno()

    def start(self) -> None:
        self.sock.setblocking(False)
        self.loop.add_reader(self._fd, self._on_readable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self._fd)
            self.sock.close()

    def _on_readable(self) -> None:
        accept = self.sock.accept
        for _ in range(self.batch):
            try:
                conn, _ = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                if exc.errno in _RESOURCE_ERRORS:
                    log.warning("accept() failed: %s; retrying in %.1f s", exc, RETRY_AFTER)
                    self.loop.remove_reader(self._fd)
                    self.loop.call_later(RETRY_AFTER, self._resume)
                    return
                raise
            self.loop.create_task(self._hand_over(conn))
        # A full batch: more are probably queued. Let a sibling that woke up too take some.
        os.sched_yield()

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self._fd, self._on_readable)

    async def _hand_over(self, conn: socket.socket) -> None:
        try:
            if self.ssl_context is None:
                await self.loop.connect_accepted_socket(self.factory, conn)
            else:
                await self.loop.connect_accepted_socket(
                    self.factory, conn, ssl=self.ssl_context,
                    ssl_handshake_timeout=self.handshake_timeout)
        except Exception as exc:  # a reset before connection_made, a failed TLS handshake...
            log.debug("a connection dropped before it started: %s", exc)
            conn.close()


__all__ = ["DEFAULT_BATCH", "RETRY_AFTER", "Acceptor"]
