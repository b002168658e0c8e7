#!/usr/bin/env python3
"""The WebSocket load generator of benchmarks/websocket/run.py: raw sockets, pre-masked frames, epoll.

    python client.py --port 8000 --connections 100 --size 64 --window 1 \\
        --start-at EPOCH --warmup 1 --duration 4

One process, one thread, no asyncio: every connection is a non-blocking socket in one epoll set
(level-triggered). Why this shape: the client must cost less per message than the servers it
measures, and a Python WebSocket library parses, unmasks and copies every frame. Here the only
per-message work is arithmetic:
- the frame a connection sends is built (and masked) once: the same bytes every time;
- the echo of a binary message of `size` bytes is a server frame of known length (`echo_size`: the
  unmasked header plus the payload), so a received chunk is counted, not parsed: `recv_into` one
  reusable buffer, add the byte count, and every `echo_size` bytes is one message back, which
  sends one more (a closed loop with `window` messages in flight per connection).
Correctness is checked outside the timed window: before it, every connection does one echo whose
bytes are compared in full (header and payload); after it, sending stops, the messages in flight
are drained, and every connection must have received exactly as many whole echo frames as it sent
(a server that answered anything else -- a ping, a close, a truncated frame -- breaks the count).

Timeline (wall clock, so several processes started by run.py measure the same interval): connect
and validate, wait for ``--start-at``, ``--warmup`` seconds of load, then ``--duration`` seconds
counted. Prints one JSON object: messages and seconds of the counted window, the process's CPU
seconds over that window (user + system), and errors. Every loop is bounded by a deadline.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import resource
import select
import socket
import struct
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECV_SIZE = 1 << 18


def client_frame(payload: bytes, opcode: int = 2, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """One masked client frame (FIN set)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return head + mask + masked


def server_frame(payload: bytes, opcode: int = 2) -> bytes:
    """The unmasked frame a server sends for this payload (what the echo must be)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def handshake(host: str, port: int, path: str, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
                 + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
                 + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 16384:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head[:80]!r}")
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).lower()  # noqa: S324 - the RFC's
    if b"sec-websocket-accept: " + accept not in head.lower():
        raise ConnectionError("bad Sec-WebSocket-Accept")
    if b"sec-websocket-extensions" in head.lower():
        raise ConnectionError("the server negotiated an extension that was not offered")
    if rest:
        raise ConnectionError("data before the first message")
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


class Conn:
    __slots__ = ("sock", "fd", "out", "rx", "sent", "received", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.out = bytearray()  # frames the kernel did not take yet
        self.rx = 0  # bytes of an echo frame received so far
        self.sent = 0
        self.received = 0
        self.writing = False  # registered for EPOLLOUT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--size", type=int, default=64, help="payload bytes per message")
    parser.add_argument("--window", type=int, default=1, help="messages in flight per connection")
    parser.add_argument("--start-at", type=float, default=0.0, help="wall-clock start (epoch s)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()

    payload = os.urandom(args.size)
    frame = client_frame(payload)
    echo = server_frame(payload)
    echo_size = len(echo)
    errors: list[str] = []

    conns: dict[int, Conn] = {}
    try:
        for _ in range(args.connections):
            sock = handshake(args.host, args.port, args.path, 10.0)
            conn = Conn(sock)
            conns[conn.fd] = conn
        for conn in conns.values():  # one validated echo each, byte for byte
            conn.sock.sendall(frame)
        for conn in conns.values():
            if recv_exactly(conn.sock, echo_size) != echo:
                raise ConnectionError("the echo differs from the message sent")
    except (OSError, ConnectionError) as exc:
        print(json.dumps({"messages": 0, "seconds": 0, "cpu_s": 0, "errors": [str(exc)]}))
        return 1

    ep = select.epoll()
    for conn in conns.values():
        conn.sock.setblocking(False)
        ep.register(conn.fd, select.EPOLLIN)
    buf = bytearray(RECV_SIZE)
    view = memoryview(buf)
    IN, OUT = select.EPOLLIN, select.EPOLLOUT  # noqa: N806
    batch = [frame * k for k in range(args.window + 1)]

    def push(conn: Conn, data: bytes) -> None:
        if conn.out:
            conn.out += data
            return
        try:
            n = conn.sock.send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            conn.out += data[n:]
            if not conn.writing:
                conn.writing = True
                ep.modify(conn.fd, IN | OUT)

    start = args.start_at or time.time()
    while time.time() < start:
        time.sleep(min(0.05, max(0.0, start - time.time())))
    t_count = start + args.warmup
    t_stop = t_count + args.duration
    for conn in conns.values():
        push(conn, batch[args.window])
        conn.sent += args.window
    counted_from: int | None = None
    cpu_from = 0.0
    counted_at = 0.0
    received = 0
    sending = True
    drain_deadline = t_stop + 10.0
    poll = ep.poll
    while True:
        now = time.time()
        if sending:
            if counted_from is None and now >= t_count:
                counted_from, counted_at = received, now
                ru = resource.getrusage(resource.RUSAGE_SELF)
                cpu_from = ru.ru_utime + ru.ru_stime
            if now >= t_stop:
                sending = False
                ru = resource.getrusage(resource.RUSAGE_SELF)
                cpu_s = ru.ru_utime + ru.ru_stime - cpu_from
                messages = received - (counted_from or 0)
                seconds = now - counted_at
        if not sending and (all(c.received == c.sent for c in conns.values())
                            or now >= drain_deadline):
            break
        for fd, ev in poll(0.05):
            conn = conns[fd]
            if ev & IN:
                try:
                    n = conn.sock.recv_into(view)
                except BlockingIOError:
                    n = -1
                except OSError as exc:
                    errors.append(f"recv: {exc}")
                    n = 0
                if n == 0:
                    errors.append("connection closed by the server")
                    ep.unregister(fd)
                    del conns[fd]
                    if not conns:
                        break
                    continue
                if n > 0:
                    rx = conn.rx + n
                    done = rx // echo_size
                    conn.rx = rx - done * echo_size
                    if done:
                        conn.received += done
                        received += done
                        if sending:
                            conn.sent += done
                            push(conn, batch[done] if done <= args.window else frame * done)
            if ev & OUT and conn.out:
                try:
                    n = conn.sock.send(conn.out)
                except BlockingIOError:
                    n = 0
                del conn.out[:n]
                if not conn.out:
                    conn.writing = False
                    ep.modify(fd, IN)
        if not conns:
            break
    if sending:  # every connection was lost
        errors.append("all connections lost")
        messages, seconds, cpu_s = 0, 1.0, 0.0
    short = [c for c in conns.values() if c.received != c.sent or c.rx]
    if short:
        errors.append(f"{len(short)} connection(s) did not get every echo back whole")
    for conn in conns.values():
        conn.sock.close()
    ep.close()
    print(json.dumps({"messages": messages, "seconds": seconds, "cpu_s": cpu_s,
                      "connections": len(conns), "errors": errors}))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
