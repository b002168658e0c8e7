"""The lab app's ASGI face (`lab.apps.asgi_app:app`), ASGI 3: http, websocket, lifespan.

The /io endpoint uses one `httpx.AsyncClient` per event loop (created lazily, closed at lifespan
shutdown when the server runs lifespan), so async workers call the upstream without blocking the loop.
`/ws` echoes every text or bytes message until the client closes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from lab.apps import content

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_counter = itertools.count()
_clients: dict[asyncio.AbstractEventLoop, Any] = {}


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _http_client() -> Any:
    """The httpx.AsyncClient of the running loop (imported lazily: only /io needs httpx)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        import httpx

        client = httpx.AsyncClient(
            timeout=30.0, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )
        _clients[loop] = client
    return client


async def _close_clients() -> None:
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()


async def _read_body(receive: Receive) -> tuple[int, int]:
    length = 0
    crc = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        length += len(chunk)
        crc = content.crc_update(crc, chunk)
        if not message.get("more_body", False):
            break
    return length, crc


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope.get("path", "/")
    method = scope.get("method", "GET")
    query = scope.get("query_string", b"").decode("latin-1")
    if path == "/":
        await _respond(send, 200, content.HELLO, b"text/plain")
    elif path == "/health":
        await _respond(send, 200, b"ok\n", b"text/plain")
    elif path == "/json":
        await _respond(send, 200, content.json_body(next(_counter)))
    elif path == "/download":
        size = content.query_int(query, "size", content.DOWNLOAD_DEFAULT, 0, content.DOWNLOAD_MAX)
        await _respond(send, 200, content.download_body(size), b"application/octet-stream")
    elif path == "/upload" and method == "POST":
        length, crc = await _read_body(receive)
        await _respond(send, 200, content.upload_answer(length, crc))
    elif path == "/cpu":
        rounds = content.query_int(query, "n", content.CPU_DEFAULT_ROUNDS, 0, content.CPU_MAX_ROUNDS)
        await _respond(send, 200, content.cpu_body(rounds))
    elif path == "/io":
        target = content.upstream_target(query)
        if target is None:
            await _respond(send, 503, content.NO_UPSTREAM)
            return
        upstream = await _http_client().get(target)
        await _respond(send, 200 if upstream.status_code == 200 else 502, upstream.content)
    else:
        await _respond(send, 404, content.NOT_FOUND, b"text/plain")


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("path") != "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await _close_clients()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI 3 entry point."""
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
