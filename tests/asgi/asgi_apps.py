"""ASGI applications the tests serve (importable by the server subprocess: tests/asgi is on its
PYTHONPATH)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs


async def read_body(receive: Any) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def respond(send: Any, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers or [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def lifespan(scope: Any, receive: Any, send: Any, *, fail: str = "") -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if fail == "raise":
                raise RuntimeError("startup exploded")
            if fail == "message":
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["started"] = "yes"
            scope["state"]["pid"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            marker = os.environ.get("TRICORN_TEST_SHUTDOWN_MARKER")
            if marker:
                with open(marker, "w") as f:
                    f.write("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Routes: / (hello), /echo, /slow?s=, /slowstream?s=, /state, /stream?n=&size=, /pid,
    /raise."""
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    if path == "/echo":
        await respond(send, 200, await read_body(receive))
    elif path == "/slow":
        await asyncio.sleep(float(query.get("s", ["0.5"])[0]))
        await respond(send, 200, b"slept")
    elif path == "/state":
        await respond(send, 200, json.dumps(scope.get("state", {})).encode())
    elif path == "/pid":
        await respond(send, 200, str(os.getpid()).encode())
    elif path == "/slowstream":  # the head and a first part at once, the rest after s seconds
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        await asyncio.sleep(float(query.get("s", ["0.5"])[0]))
        await send({"type": "http.response.body", "body": b"last"})
    elif path == "/raise":
        raise RuntimeError("the application failed")
    elif path == "/stream":
        n = int(query.get("n", ["10"])[0])
        size = int(query.get("size", ["1000"])[0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(n):
            await send({"type": "http.response.body", "body": b"x" * size, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await respond(send, 200, b"hello")


async def failing_startup(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send, fail="message")
        return
    await respond(send, 200, b"never")


async def raising_startup(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send, fail="raise")
        return
    await respond(send, 200, b"never")


async def http_only(scope: Any, receive: Any, send: Any) -> None:
    """An app that does not know lifespan (it raises on anything but http)."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']!r}")
    await respond(send, 200, b"http only")


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["PATH_INFO"].encode(), b" ", body]


def factory() -> Any:
    return app
