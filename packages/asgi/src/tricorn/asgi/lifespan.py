"""The ASGI lifespan protocol (spec 2.0, with ``state``): startup before serving, shutdown after.

`Lifespan.startup()` calls the application with a ``lifespan`` scope in its own Task and waits for
``lifespan.startup.complete`` (True: serve) or ``lifespan.startup.failed`` (False). `shutdown()`
delivers ``lifespan.shutdown`` and waits for ``lifespan.shutdown.complete`` / ``.failed``.

Modes (``--lifespan``):
- ``off``: the application never sees a lifespan scope; startup always succeeds.
- ``on``: an exception, a failure message or running out of `timeout` during startup is a failed
  startup; the server then exits with code 3 (so an arbiter stops instead of respawning).
- ``auto``: like ``on``, except that an application raising *before it sent any lifespan
  message* (an HTTP-only application typically rejects the scope, or sends HTTP messages, which
  raise here) is taken not to support lifespan (logged at info level; the server serves without
  it), as the spec requires.

Invariants:
- The ``state`` dict in the lifespan scope is the server's `app_state`; each request scope gets a
  shallow copy of it (cycle.py), so what startup stores there is visible to every request.
- Messages out of order (a startup message after shutdown began, an unknown type) raise
  `ASGIProtocolError` into the application. Nothing here raises into the server: every outcome is
  a return value and a log line.
- An application that returns normally before answering startup lets the server serve (nothing
  failed); one that is still running at the end is cancelled after shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .errors import ASGIProtocolError
from .types import ASGIApp, Message

log = logging.getLogger("tricorn.error")

_STARTUP: Message = {"type": "lifespan.startup"}
_SHUTDOWN: Message = {"type": "lifespan.shutdown"}


class Lifespan:
    """Runs one application's lifespan (see the module docstring)."""

    def __init__(self, app: ASGIApp, mode: str, state: dict[str, Any], *,
                 timeout: float = 60.0) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode must be auto, on or off, got {mode!r}")
        self.app = app
        self.mode = mode
        self.state = state
        self.timeout = timeout or None
        self.supported = mode != "off"
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done: asyncio.Future[bool] | None = None
        self._shutdown_done: asyncio.Future[bool] | None = None
        self._sent_any = False
        self._phase = "idle"  # -> startup -> started -> shutdown -> done

    async def startup(self) -> bool:
        """True when the server may start serving."""
        if not self.supported:
            return True
        loop = asyncio.get_running_loop()
        self._startup_done = loop.create_future()
        self._shutdown_done = loop.create_future()
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._phase = "startup"
        self._inbox.put_nowait(_STARTUP)
        self._task = loop.create_task(self._main(scope))
        try:
            ok = await asyncio.wait_for(asyncio.shield(self._startup_done), self.timeout)
        except TimeoutError:
            log.error("Application startup did not complete within %s seconds", self.timeout)
            await self._cancel()
            return False
        if ok and self._phase == "startup":
            self._phase = "started"
        return ok

    async def shutdown(self) -> None:
        """Tell the application to shut down and wait for it (bounded by `timeout`)."""
        if not self.supported or self._task is None or self._shutdown_done is None:
            return
        if self._phase == "started":
            self._phase = "shutdown"
            self._inbox.put_nowait(_SHUTDOWN)
            try:
                await asyncio.wait_for(asyncio.shield(self._shutdown_done), self.timeout)
            except TimeoutError:
                log.error("Application shutdown did not complete within %s seconds",
                          self.timeout)
        await self._cancel()

    async def _cancel(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _main(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed_with(exc)
        else:
            if self._phase in ("startup", "started", "shutdown"):
                self._resolve(self._startup_done, True)
                self._resolve(self._shutdown_done, True)
        finally:
            self._phase = "done"

    def _failed_with(self, exc: Exception) -> None:
        if self._phase == "startup":
            if self.mode == "auto" and not self._sent_any:
                log.info("ASGI 'lifespan' protocol appears unsupported (%s: %s); serving without it",
                         type(exc).__name__, exc)
                self.supported = False
                self._resolve(self._startup_done, True)
                return
            log.error("Exception in 'lifespan' startup", exc_info=exc)
            self._resolve(self._startup_done, False)
            return
        log.error("Exception in 'lifespan' protocol", exc_info=exc)
        self._resolve(self._shutdown_done, False)

    @staticmethod
    def _resolve(future: asyncio.Future[bool] | None, value: bool) -> None:
        if future is not None and not future.done():
            future.set_result(value)

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        mtype = message.get("type")
        if mtype == "lifespan.startup.complete" or mtype == "lifespan.startup.failed":
            self._sent_any = True
            if self._phase != "startup":
                raise ASGIProtocolError(f"{mtype!r} sent outside lifespan startup")
            if mtype == "lifespan.startup.failed":
                log.error("Application startup failed: %s", message.get("message", ""))
                self._resolve(self._startup_done, False)
            else:
                self._phase = "started"
                self._resolve(self._startup_done, True)
        elif mtype == "lifespan.shutdown.complete" or mtype == "lifespan.shutdown.failed":
            self._sent_any = True
            if self._phase != "shutdown":
                raise ASGIProtocolError(f"{mtype!r} sent before 'lifespan.shutdown'")
            if mtype == "lifespan.shutdown.failed":
                log.error("Application shutdown failed: %s", message.get("message", ""))
            self._phase = "done"
            self._resolve(self._shutdown_done, mtype == "lifespan.shutdown.complete")
        else:
            raise ASGIProtocolError(f"unexpected ASGI message type {mtype!r} in a lifespan scope")


__all__ = ["Lifespan"]
