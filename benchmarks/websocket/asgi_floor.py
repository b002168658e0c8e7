#!/usr/bin/env python3
"""asgi-floor: the floor of benchmarks/websocket/run.py for an ASGI server on asyncio + uvloop.

    python asgi_floor.py --host 127.0.0.1 --port 8000     # from benchmarks/websocket

A deliberately minimal ASGI WebSocket server running app.py's echo app: every per-message step that
an ASGI server on asyncio cannot avoid, and nothing else. One uvloop event loop; one
``asyncio.BufferedProtocol`` per connection; the socket is read straight into tricorn's C frame
parser (``FrameParser.get_buffer`` / ``buffer_updated``), each message goes on a deque as an ASGI
event and wakes the app's Task through a future; ``send`` writes a Python-built frame header and
the payload with one ``transport.write`` (``writelines`` over 16 KiB). The HTTP phase is only what
the benchmark needs: a request with ``Sec-WebSocket-Key`` gets the 101, any other a 200 (the
readiness probe) and a close. NO validation, NO flow control, NO timers, NO logging, no subprotocols
or extensions, no fragmented messages, no pings: not a server to use, a cost to compare with.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import struct
from collections import deque
from typing import Any

import uvloop
from app import app
from tricorn.core.parser import FrameParser

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_SIZE = 16 * 1024 * 1024
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\nwebsocket echo\n"
SCOPE = {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.3"},
         "http_version": "1.1", "scheme": "ws", "path": "/ws", "raw_path": b"/ws",
         "query_string": b"", "root_path": "", "headers": [], "subprotocols": []}
CONNECT = {"type": "websocket.connect"}
DISCONNECT = {"type": "websocket.disconnect", "code": 1006}
CLOSE = b"\x88\x02\x03\xe8"  # a close frame, code 1000


def frame_header(opcode: int, n: int) -> bytes:
    """The header of an unmasked server frame (FIN set) with an n-byte payload."""
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n)
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n)
    return struct.pack("!BBQ", 0x80 | opcode, 127, n)


class Floor(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.head = bytearray()
        self.head_buf = bytearray(4096)
        self.parser: FrameParser | None = None
        self.queue: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.connected = False  # websocket.connect was received
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> Any:
        return self.head_buf if self.parser is None else self.parser.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self.parser is None:
            self.head += self.head_buf[:nbytes]
            end = self.head.find(b"\r\n\r\n")
            if end >= 0:
                self.upgrade(bytes(self.head[:end]), bytes(self.head[end + 4:]))
            return
        self.receive_items(self.parser.buffer_updated(nbytes))

    def upgrade(self, head: bytes, rest: bytes) -> None:
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
                break
        else:
            self.transport.write(OK)
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 - the RFC's
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.parser = FrameParser(MAX_SIZE, server=True)
        self.task = self.loop.create_task(app(SCOPE, self.receive, self.send))
        if rest:
            self.receive_items(self.parser.feed(rest))

    def receive_items(self, items: list[Any]) -> None:
        for item in items:
            if type(item) is bytes:
                self.queue.append({"type": "websocket.receive", "bytes": item})
            elif type(item) is str:
                self.queue.append({"type": "websocket.receive", "text": item})
            elif item[0] == 8:  # close: answer it and end the connection
                self.transport.write(CLOSE)
                self.transport.close()
                return
        waiter = self.waiter
        if waiter is not None and self.queue:
            self.waiter = None
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        if not self.connected:
            self.connected = True
            return CONNECT
        if self.queue:
            return self.queue.popleft()
        if self.closed:
            return DISCONNECT
        self.waiter = self.loop.create_future()
        await self.waiter
        return self.queue.popleft() if self.queue else DISCONNECT

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                payload, opcode = message["text"].encode(), 1
            else:
                payload, opcode = data, 2
            header = frame_header(opcode, len(payload))
            if len(payload) > 16384:
                self.transport.writelines((header, payload))
            else:
                self.transport.write(header + payload)
        elif kind == "websocket.close":
            self.transport.write(CLOSE)
            self.transport.close()
        # websocket.accept: the 101 was sent with the handshake


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Floor, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
