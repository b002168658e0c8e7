"""The slow upstream HTTP service behind the /io endpoint: `python -m lab.apps.upstream`.

A small asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) that answers every request after a
delay: `GET /delay?ms=N` waits N ms, any other path waits the configured `--delay-ms`. It binds loopback
only and prints `LISTENING http://HOST:PORT` once ready, so the lab can start it on port 0.

Limits: a request head larger than 16 KiB or a body larger than 1 MiB closes the connection; a delay
is capped at 10 s; the server exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from lab.apps.content import query_int
from lab.net import ensure_loopback

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(method, target, lower-cased headers) of a request head, or None when malformed."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], headers


class Upstream:
    """Serves delayed answers; counts the requests it has answered."""

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = delay_ms
        self.answered = 0

    def delay_for(self, target: str) -> float:
        path, _, query = target.partition("?")
        if path == "/delay":
            return query_int(query, "ms", self.delay_ms, 0, 10_000) / 1000.0
        return self.delay_ms / 1000.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                parsed = _parse_head(head[:-4])
                if parsed is None:
                    return
                method, target, headers = parsed
                length = int(headers.get("content-length", "0") or 0)
                if length > MAX_BODY or "chunked" in headers.get("transfer-encoding", ""):
                    return
                if length:
                    await reader.readexactly(length)
                delay = self.delay_for(target)
                await asyncio.sleep(delay)
                body = json.dumps({"upstream": "ok", "delay_ms": round(delay * 1000)}).encode()
                close = headers.get("connection", "").lower() == "close"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n".encode()
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\n"
                    + body
                )
                await writer.drain()
                self.answered += 1
                if close or method == "HEAD":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def serve(host: str, port: int, delay_ms: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    upstream = Upstream(delay_ms)
    server = await asyncio.start_server(upstream.handle, host, port, limit=MAX_HEAD, backlog=1024)
    bound = server.sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    print(f"LISTENING http://{shown}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.apps.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=50)
    args = parser.parse_args(argv)
    ensure_loopback(args.host)
    asyncio.run(serve(args.host, args.port, max(0, args.delay_ms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
