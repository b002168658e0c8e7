"""Blocking-with-timeout I/O over a non-blocking socket (plain TCP, Unix, or TLS).

A worker thread serving a request reads the body and writes the response through a `Stream`. The
socket itself stays non-blocking (the pollers of the gthread worker share it), so every call first
tries the operation and waits with ``poll()`` only when it would block: the common case costs one
system call, not two (a socket with a Python timeout polls before every call).

Invariants:
- No read waits longer than `read_timeout` seconds without progress, no write longer than
  `write_timeout` (nor past an explicit deadline); then `ClientTimeout` is raised. A reset, a
  broken pipe or a TLS failure is `ClientDisconnected`. End of input is not an error: `recv`
  returns b"".
- `sendall`/`sendv` return only when every byte was handed to the kernel.
- TLS sockets wait for whatever the TLS layer asks for (want-read while writing, and the reverse),
  and report the bytes the TLS layer has already decrypted (`pending`), which poll() cannot see.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Final

from .errors import ClientDisconnected, ClientTimeout

RECV_SIZE: Final = 65536
_IN: Final = select.POLLIN
_OUT: Final = select.POLLOUT
_monotonic = time.monotonic
_WOULD_BLOCK: Final = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_SENDMSG_MAX_PARTS: Final = 64


class SendfileUnsupported(Exception):
    """os.sendfile() cannot be used for this socket/file pair; copy instead."""


class Stream:
    """Timed reads and writes on one connection's non-blocking socket."""

    __slots__ = ("sock", "read_timeout", "write_timeout", "tls", "_poll", "_events")

    def __init__(self, sock: socket.socket, read_timeout: float, write_timeout: float) -> None:
        self.sock = sock
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.tls = isinstance(sock, ssl.SSLSocket)
        self._poll: select.poll | None = None
        self._events = 0

    # ------------------------------------------------------------------------------------ waits

    def wait(self, events: int, deadline: float | None = None, writing: bool = False) -> None:
        """Wait until the socket is ready for `events` (POLLIN/POLLOUT); ClientTimeout at
        `deadline` (a `time.monotonic()` value) if given, else after the write timeout when
        `writing` (even if TLS needs to read for the write), the read timeout otherwise."""
        if deadline is None:
            timeout = self.write_timeout if writing else self.read_timeout
        else:
            timeout = deadline - _monotonic()
            if timeout <= 0:
                raise ClientTimeout(errno.ETIMEDOUT, "timed out")
        p = self._poll
        if p is None:
            p = self._poll = select.poll()
            p.register(self.sock.fileno(), events)
            self._events = events
        elif self._events != events:
            p.modify(self.sock.fileno(), events)
            self._events = events
        if not p.poll(timeout * 1000.0):
            raise ClientTimeout(errno.ETIMEDOUT, "timed out")

    def _wait_for(self, exc: BaseException, default: int, deadline: float | None) -> None:
        writing = default == _OUT
        if isinstance(exc, ssl.SSLWantWriteError):
            self.wait(_OUT, deadline, writing)
        elif isinstance(exc, ssl.SSLWantReadError):
            self.wait(_IN, deadline, writing)
        else:
            self.wait(default, deadline, writing)

    # ------------------------------------------------------------------------------------- read

    def recv(self, deadline: float | None = None) -> bytes:
        """Up to 64 KiB as soon as any byte is available; b"" at end of input."""
        sock = self.sock
        while True:
            try:
                return sock.recv(RECV_SIZE)
            except _WOULD_BLOCK as exc:
                self._wait_for(exc, _IN, deadline)
            except ssl.SSLError as exc:
                raise ClientDisconnected(errno.ECONNABORTED, f"TLS error: {exc}") from exc
            except OSError as exc:
                if isinstance(exc, ClientDisconnected):
                    raise
                raise ClientDisconnected(exc.errno or errno.ECONNRESET, str(exc)) from exc

    def recv_nowait(self) -> bytes | None:
        """What is available right now (b"" at end of input), or None if nothing is."""
        try:
            return self.sock.recv(RECV_SIZE)
        except _WOULD_BLOCK:
            return None
        except ssl.SSLError as exc:
            raise ClientDisconnected(errno.ECONNABORTED, f"TLS error: {exc}") from exc
        except OSError as exc:
            raise ClientDisconnected(exc.errno or errno.ECONNRESET, str(exc)) from exc

    def pending(self) -> int:
        """Bytes the TLS layer has decrypted but not returned yet (always 0 without TLS)."""
        if self.tls:
            return self.sock.pending()  # type: ignore[attr-defined,no-any-return]
        return 0

    # ------------------------------------------------------------------------------------ write

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        sock = self.sock
        try:
            n = sock.send(data)
        except _WOULD_BLOCK as exc:
            n = 0
            self._wait_for(exc, _OUT, None)
        except ssl.SSLError as exc:
            raise ClientDisconnected(errno.ECONNABORTED, f"TLS error: {exc}") from exc
        except OSError as exc:
            raise ClientDisconnected(exc.errno or errno.EPIPE, str(exc)) from exc
        if n == len(data):
            return
        view = memoryview(data)[n:]
        while view:
            try:
                n = sock.send(view)
            except _WOULD_BLOCK as exc:
                self._wait_for(exc, _OUT, None)
                continue
            except ssl.SSLError as exc:
                raise ClientDisconnected(errno.ECONNABORTED, f"TLS error: {exc}") from exc
            except OSError as exc:
                raise ClientDisconnected(exc.errno or errno.EPIPE, str(exc)) from exc
            view = view[n:]

    def sendv(self, parts: Sequence[bytes]) -> None:
        """Send `parts` in order, without joining them when the socket can gather (sendmsg)."""
        if self.tls or len(parts) > _SENDMSG_MAX_PARTS:
            self.sendall(b"".join(parts))
            return
        try:
            n = self.sock.sendmsg(parts)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            raise ClientDisconnected(exc.errno or errno.EPIPE, str(exc)) from exc
        for part in parts:
            size = len(part)
            if n >= size:
                n -= size
                continue
            self.sendall(memoryview(part)[n:] if n else part)
            n = 0

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send up to `count` bytes of file `fd` from `offset` with os.sendfile(); returns the
        bytes sent (fewer if the file ends first). Raises SendfileUnsupported before sending
        anything if the kernel refuses this pair."""
        if self.tls:
            raise SendfileUnsupported("TLS socket")
        out = self.sock.fileno()
        sent = 0
        while count > 0:
            try:
                n = os.sendfile(out, fd, offset, min(count, 0x7FFFF000))
            except BlockingIOError:
                self.wait(_OUT, writing=True)
                continue
            except OSError as exc:
                if sent == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                               errno.ENOTSOCK, errno.ESPIPE):
                    raise SendfileUnsupported(str(exc)) from exc
                raise ClientDisconnected(exc.errno or errno.EPIPE, str(exc)) from exc
            if n == 0:
                break
            offset += n
            count -= n
            sent += n
        return sent


def linger_close(sock: socket.socket, seconds: float = 1.0, limit: int = 1 << 20) -> None:
    """Close after a response the client may not have read yet while it still sends: shut down our
    side, discard input until end of input, `limit` bytes or `seconds`, then close (so that a
    reset caused by unread input cannot destroy the response in flight; RFC 9112 section 9.6)."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        sock.close()
        return
    deadline = _monotonic() + seconds
    p = select.poll()
    try:
        p.register(sock.fileno(), _IN)
        while limit > 0:
            left = deadline - _monotonic()
            if left <= 0 or not p.poll(left * 1000.0):
                break
            try:
                data = sock.recv(RECV_SIZE)
            except _WOULD_BLOCK:
                continue
            if not data:
                break
            limit -= len(data)
    except (OSError, ValueError):
        pass
    finally:
        sock.close()
