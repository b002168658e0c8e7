"""A tiny non-blocking request/response server driven by the master's selector.

Used by the status listener (HTTP) and the control socket (JSON lines). One request per
connection: read until the subclass says the request is complete, write the response, close.
No threads, no event loop: accept, read and write are non-blocking calls made from the master's
loop when the selector reports readiness.

Invariants:
- At most `max_connections` connections are open; more are accepted and closed at once.
- A request is capped at `max_request` bytes and a connection at `deadline` seconds from accept
  (`tick` closes late ones), so a slow or hostile client costs a bounded amount of memory and
  never blocks the master.
- A handler exception is logged and answered (`error_response`); it never reaches the loop.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

__all__ = ["LoopServer"]


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    out: bytes = b""
    writing: bool = False


class LoopServer(ABC):
    """Subclasses implement `complete` and `respond` (and may override `error_response`)."""

    max_connections = 32
    max_request = 16384
    deadline = 5.0

    def __init__(self, sock: socket.socket, selector: selectors.BaseSelector,
                 log: logging.Logger) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.selector = selector
        self.log = log
        self.conns: dict[socket.socket, _Conn] = {}
        selector.register(sock, selectors.EVENT_READ, self._on_accept)

    # --- to implement

    @abstractmethod
    def complete(self, data: bytes) -> bool:
        """Whether `data` holds a whole request."""

    @abstractmethod
    def respond(self, data: bytes) -> bytes:
        """The response to a whole request."""

    def error_response(self, message: str) -> bytes:
        return message.encode() + b"\n"

    # --- loop side

    def _on_accept(self, fileobj: object, mask: int) -> None:
        for _ in range(16):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.debug("accept failed: %s", exc)
                return
            if len(self.conns) >= self.max_connections:
                conn.close()
                continue
            conn.setblocking(False)
            self.conns[conn] = _Conn(conn, time.monotonic() + self.deadline)
            self.selector.register(conn, selectors.EVENT_READ, self._on_io)

    def _on_io(self, fileobj: object, mask: int) -> None:
        if not isinstance(fileobj, socket.socket):
            return
        conn = self.conns.get(fileobj)
        if conn is None:
            return
        if conn.writing:
            self._write(conn)
            return
        try:
            chunk = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not chunk:
            self._close(conn)
            return
        conn.data += chunk
        if len(conn.data) > self.max_request:
            self._answer(conn, self.error_response("request too large"))
        elif self.complete(bytes(conn.data)):
            try:
                response = self.respond(bytes(conn.data))
            except Exception as exc:
                self.log.exception("status/control request failed")
                response = self.error_response(f"internal error: {type(exc).__name__}")
            self._answer(conn, response)

    def _answer(self, conn: _Conn, response: bytes) -> None:
        conn.out = response
        conn.writing = True
        self.selector.modify(conn.sock, selectors.EVENT_WRITE, self._on_io)
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self.conns.pop(conn.sock, None)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def tick(self, now: float) -> None:
        for conn in [c for c in self.conns.values() if now >= c.deadline]:
            self._close(conn)

    def close(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn)
        try:
            self.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()

    def close_in_child(self) -> None:
        """In a forked worker: close the descriptors, leave the (master's) selector alone."""
        for conn in self.conns.values():
            conn.sock.close()
        self.sock.close()
