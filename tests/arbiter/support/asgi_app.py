"""An ASGI app for the integration tests with the real asgi worker."""

import asyncio
import os
import time


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(float(scope["query_string"].decode().partition("=")[2] or 1))
        body = b"slow done"
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/block":  # blocks the event loop: the heartbeat must stop
        time.sleep(3600)
        body = b""
    else:
        body = b"hello asgi"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
