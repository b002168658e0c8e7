"""Writing a file as a response body (the ASGI ``http.response.pathsend`` extension).

On a plain socket (TCP or Unix, no TLS) whose transport has nothing buffered, the head and the file
go out through a duplicate of the connection's descriptor: the head with `os.write`, the file with
`os.sendfile` (zero copy). When the socket is full the coroutine waits for writability on the
duplicate (`loop.add_writer`), which works the same on asyncio's loop and on uvloop, whose
transports do not implement `loop.sendfile`. Otherwise (TLS, bytes already queued) the file is
read in `CHUNK` pieces and written through the transport with its flow control.

Invariants:
- The transport writes nothing while a file is being sent: the cycle's `send()` is in progress, and
  the protocol only writes between requests or after the connection failed.
- The wait for writability is bounded by the protocol's write deadline (it arms `T_WRITE` as for a
  paused transport) and ends when the connection is lost; the writer registration is always
  removed before the duplicate descriptor is closed (never a stale epoll entry).
- Exactly `count` bytes are sent, or `ClientDisconnected` (peer gone) or `OSError` (the file
  shrank meanwhile) is raised.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Final

from .errors import ClientDisconnected

if TYPE_CHECKING:
    from .protocol import HttpProtocol

CHUNK: Final = 256 * 1024


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _writable(proto: HttpProtocol, fd: int) -> None:
    loop = proto.loop
    waiter = loop.create_future()
    proto.pause_writing()  # arms the write deadline; resume_writing() below disarms it
    proto.drain_waiter = waiter  # connection_lost() wakes it too
    loop.add_writer(fd, _wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)
        if proto.drain_waiter is waiter:
            proto.drain_waiter = None
        if not proto.closed:
            proto.resume_writing()
    if proto.closed:
        raise ClientDisconnected("the client disconnected")


async def send_file(proto: HttpProtocol, head: bytes, fd: int, count: int) -> None:
    """Write `head`, then `count` bytes of the open file `fd` from offset 0 (see module doc)."""
    transport = proto.transport
    sock = transport.get_extra_info("socket")
    if (sock is None or transport.get_extra_info("sslcontext") is not None
            or transport.get_write_buffer_size() or proto.closed):
        await _copy(proto, head, fd, count)
        return
    out = os.dup(sock.fileno())
    try:
        view = memoryview(head)
        while view:
            try:
                view = view[os.write(out, view):]
            except BlockingIOError:
                await _writable(proto, out)
            except (BrokenPipeError, ConnectionResetError):
                raise ClientDisconnected("the client disconnected") from None
        offset = 0
        while offset < count:
            try:
                sent = os.sendfile(out, fd, offset, count - offset)
            except BlockingIOError:
                await _writable(proto, out)
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise ClientDisconnected("the client disconnected") from None
            if sent == 0:
                raise OSError(f"the file ended {count - offset} bytes before its size")
            offset += sent
    finally:
        os.close(out)


async def _copy(proto: HttpProtocol, head: bytes, fd: int, count: int) -> None:
    transport = proto.transport
    if proto.closed:
        raise ClientDisconnected("the client disconnected")
    transport.write(head)
    offset = 0
    while offset < count:
        data = os.pread(fd, min(CHUNK, count - offset), offset)
        if not data:
            raise OSError(f"the file ended {count - offset} bytes before its size")
        offset += len(data)
        if proto.closed:
            raise ClientDisconnected("the client disconnected")
        transport.write(data)
        if proto.write_paused:
            await proto.drain()
    if proto.closed:
        raise ClientDisconnected("the client disconnected")


__all__ = ["send_file"]
