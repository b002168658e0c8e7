"""The application the deployment tests serve, as a WSGI callable (``wsgi``) and an ASGI one (``asgi``).

GET  /info              JSON: what the server told the app (client, scheme, host, prefix, path, pid)
POST /upload            reads the body in 64 KiB pieces; JSON: byte count and CRC-32
GET  /download?n=BYTES  a body of n bytes (Content-Length), produced 64 KiB at a time
GET  /slow?s=SECONDS    sleeps (in a thread for WSGI, on the loop for ASGI), then answers
WS   any path           WebSocket echo (ASGI only); the first message describes the client
GET  /fork              forks a helper that leaves an orphan behind (see _fork_orphan)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib

CHUNK = 64 * 1024
BLOCK = bytes(range(256)) * (CHUNK // 256)


def _query_number(query: str, name: str, default: float) -> float:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name and value:
            return float(value)
    return default


def _fork_orphan() -> int:
    """A helper that forks a grandchild and exits at once (waited for, as a careful app does); the
    grandchild, orphaned, is re-parented to PID 1 and exits a moment later: only PID 1 can reap
    it. Returns the helper's pid."""
    pid = os.fork()
    if pid == 0:
        try:
            if os.fork() == 0:
                time.sleep(0.2)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid


def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if path == "/upload":
        stream = environ["wsgi.input"]
        total = crc = 0
        while True:
            data = stream.read(CHUNK)
            if not data:
                break
            total += len(data)
            crc = zlib.crc32(data, crc)
        return _json(start_response, {"bytes": total, "crc32": crc, "pid": os.getpid()})
    if path == "/download":
        n = int(_query_number(query, "n", 0))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n))])
        return _blocks(n)
    if path == "/slow":
        time.sleep(_query_number(query, "s", 1.0))
    if path == "/fork":
        return _json(start_response, {"child": _fork_orphan(), "pid": os.getpid()})
    return _json(start_response, {
        "remote_addr": environ.get("REMOTE_ADDR"),
        "remote_port": environ.get("REMOTE_PORT"),
        "scheme": environ.get("wsgi.url_scheme"),
        "host": environ.get("HTTP_HOST"),
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": path,
        "pid": os.getpid(),
    })


def _blocks(n: int):  # type: ignore[no-untyped-def]
    while n > 0:
        piece = BLOCK if n >= CHUNK else BLOCK[:n]
        n -= len(piece)
        yield piece


def _json(start_response, obj):  # type: ignore[no-untyped-def]
    body = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        return await _echo_websocket(scope, receive, send)
    if scope["type"] != "http":
        return
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root):]
    query = scope.get("query_string", b"").decode("latin-1")
    if path == "/upload":
        total = crc = 0
        more = True
        while more:
            message = await receive()
            data = message.get("body", b"")
            total += len(data)
            crc = zlib.crc32(data, crc)
            more = message.get("more_body", False)
        return await _asgi_json(send, {"bytes": total, "crc32": crc, "pid": os.getpid()})
    if path == "/download":
        n = int(_query_number(query, "n", 0))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(n).encode())]})
        for piece in _blocks(n):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        return await send({"type": "http.response.body", "body": b""})
    if path == "/slow":
        await asyncio.sleep(_query_number(query, "s", 1.0))
    if path == "/fork":
        return await _asgi_json(send, {"child": _fork_orphan(), "pid": os.getpid()})
    headers = dict(scope["headers"])
    client = scope.get("client") or (None, None)
    return await _asgi_json(send, {
        "remote_addr": client[0],
        "remote_port": client[1],
        "scheme": scope["scheme"],
        "host": headers.get(b"host", b"").decode("latin-1"),
        "script_name": root,
        "path_info": path,
        "pid": os.getpid(),
    })


async def _asgi_json(send, obj):  # type: ignore[no-untyped-def]
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _echo_websocket(scope, receive, send):  # type: ignore[no-untyped-def]
    """Echo text and bytes messages; the first reply says who the client is (proxy headers)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    client = scope.get("client") or (None, None)
    await send({"type": "websocket.send", "text": json.dumps(
        {"remote_addr": client[0], "scheme": scope["scheme"], "path": scope["path"]})})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
