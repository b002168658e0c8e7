"""The benchmark application: one raw ASGI 3 app, the same for every server.

Routes: ``/`` hello world (13 bytes), ``/64k`` a 64 KiB body, ``/echo`` echoes a POST body,
``/sleep`` awaits ``asyncio.sleep(0.01)`` then answers hello. Lifespan is answered (no-op).
"""

import asyncio

HELLO = b"Hello, world!"
BIG = b"x" * 65536
TEXT = [(b"content-type", b"text/plain")]
OCTETS = [(b"content-type", b"application/octet-stream")]


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind != "http":
        return
    path = scope["path"]
    if path == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": OCTETS})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/sleep":
        await asyncio.sleep(0.01)
    body = BIG if path == "/64k" else HELLO
    await send({"type": "http.response.start", "status": 200,
                "headers": OCTETS if body is BIG else TEXT})
    await send({"type": "http.response.body", "body": body})
