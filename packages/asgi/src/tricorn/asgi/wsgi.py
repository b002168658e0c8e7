"""``--interface wsgi``: a WSGI application served by the ASGI server, from a bounded thread pool.

`WSGIAdapter` is an ASGI 3 application. For each HTTP request it builds the PEP 3333 environ
(`tricorn.core.environ.wsgi_environ`) and runs the WSGI callable in one of `threads` pool threads;
the thread talks to the event loop only through the request's own ``receive`` / ``send``
(`asyncio.run_coroutine_threadsafe`), so HTTP/1.1, flow control, limits and deadlines stay the
protocol's. Requests beyond the pool size wait in the event loop (a queue of callables), not in
threads.

Invariants:
- ``wsgi.input`` never returns more than the request body and blocks only its own thread; a
  client that disconnects mid-body makes reads raise `OSError`.
- The response is sent as the application produces it: the first chunk is held back, so a
  one-chunk response goes out with its status and headers in one write, sized by the server.
  ``start_response`` follows PEP 3333 (``exc_info`` re-raises once headers are sent; the ``write``
  callable works); the iterable's ``close()`` is always called, on errors and disconnects too.
- An exception before the response started gives a 500 (the ASGI layer sends it); after, the
  connection is cut. Pool threads are daemons: a stuck application never blocks process exit.
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from tricorn.core.environ import wsgi_environ
from tricorn.core.logs import ErrorStream

from .types import Message, Receive, Scope, Send

log = logging.getLogger("tricorn.error")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ThreadPool:
    """A fixed number of daemon threads running submitted callables; results come back to the
    event loop as futures."""

    def __init__(self, threads: int, name: str = "tricorn-wsgi") -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        self._started = False

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job()

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any
               ) -> asyncio.Future[Any]:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def job() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # delivered to the awaiting coroutine
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        self._queue.put(job)
        return future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


class _Bridge:
    """Runs a coroutine of the loop from a pool thread and waits for it."""

    __slots__ = ("loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class RequestBody(io.RawIOBase):
    """``wsgi.input``: the request body, pulled from ``receive()`` as the application reads."""

    def __init__(self, bridge: _Bridge, receive: Receive) -> None:
        super().__init__()
        self._bridge = bridge
        self._receive = receive
        self._buffer = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Get the next piece of body; False at its end."""
        if self._done:
            return False
        message: Message = self._bridge.call(self._receive())
        if message["type"] == "http.disconnect":
            self._done = True
            raise OSError("the client disconnected before sending the whole request body")
        self._buffer += message.get("body", b"")
        if not message.get("more_body", False):
            self._done = True
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or (size is not None and 0 <= size <= len(self._buffer)):
                break
            if not self._fill():
                break
        cut = end + 1 if end >= 0 else len(self._buffer)
        if size is not None and size >= 0:
            cut = min(cut, size)
        data = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return data


class _Response:
    """start_response and the response body of one request, run in a pool thread."""

    def __init__(self, bridge: _Bridge, send: Send) -> None:
        self.bridge = bridge
        self.send = send
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False  # the start message has gone to the ASGI layer
        self.pending: bytes | None = None  # the first chunk, held back

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            if self.started:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status:
            raise RuntimeError("start_response() called twice without exc_info")
        code, _, _ = status.partition(" ")
        if len(code) != 3 or not code.isdigit():
            raise ValueError(f"invalid WSGI status {status!r}")
        self.status = int(code)
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]
        return self.write

    def _messages(self, body: bytes, more: bool) -> list[Message]:
        out: list[Message] = []
        if not self.started:
            if not self.status:
                raise RuntimeError("the WSGI application did not call start_response()")
            self.started = True
            out.append({"type": "http.response.start", "status": self.status,
                        "headers": self.headers})
        out.append({"type": "http.response.body", "body": body, "more_body": more})
        return out

    async def _send_all(self, messages: list[Message]) -> None:
        for message in messages:
            await self.send(message)

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.pending is None and not self.started:
            self.pending = bytes(data)
            return
        body = self.pending + bytes(data) if self.pending is not None else bytes(data)
        self.pending = None
        self.bridge.call(self._send_all(self._messages(body, True)))

    def finish(self) -> None:
        body = self.pending or b""
        self.pending = None
        self.bridge.call(self._send_all(self._messages(body, False)))


def _run(app: WSGIApp, environ: dict[str, Any], response: _Response) -> None:
    result = app(environ, response.start_response)
    try:
        if type(result) is list or type(result) is tuple:
            response.write(b"".join(result))  # the whole body is known: one sized response
        else:
            for chunk in result:
                response.write(chunk)
        response.finish()
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


class WSGIAdapter:
    """An ASGI 3 application serving `app` (WSGI) from `threads` threads (see module doc)."""

    def __init__(self, app: WSGIApp, *, threads: int = 10, multiprocess: bool = False,
                 errors: TextIO | ErrorStream | None = None) -> None:
        self.app = app
        self.pool = ThreadPool(threads)
        self.multiprocess = multiprocess
        self.errors = errors if errors is not None else sys.stderr
        """``wsgi.errors``: the error log's `ErrorStream` under the servers, stderr otherwise."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan (the server turns it off), no WebSocket for WSGI
        loop = asyncio.get_running_loop()
        bridge = _Bridge(loop)
        environ = wsgi_environ(
            method=scope["method"],
            script_name=scope.get("root_path", ""),
            raw_path=scope.get("raw_path") or scope["path"].encode("utf-8"),
            query_string=scope.get("query_string", b""),
            http_version=scope["http_version"],
            headers=scope["headers"],
            server=scope.get("server"),
            client=scope.get("client"),
            scheme=scope.get("scheme", "http"),
            wsgi_input=RequestBody(bridge, receive),  # type: ignore[arg-type]
            wsgi_errors=self.errors,
            multithread=True,
            multiprocess=self.multiprocess,
        )
        response = _Response(bridge, send)
        await self.pool.submit(loop, _run, self.app, environ, response)


__all__ = ["RequestBody", "ThreadPool", "WSGIAdapter"]
