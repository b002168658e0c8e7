"""Choosing the event loop (``--loop auto|asyncio|uvloop``).

`loop_factory(name)` returns a callable that makes a new event loop (for `asyncio.Runner`).
``auto`` is uvloop when it can be imported, else asyncio's default loop; ``uvloop`` without uvloop
installed is an error naming the extra to install. uvloop is imported only when asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LoopUnavailable(Exception):
    """The requested event loop cannot be used; `str(exc)` says what to install."""


def _uvloop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of new event loops for `name` (auto, asyncio, uvloop)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name in ("auto", "uvloop"):
        factory = _uvloop()
        if factory is not None:
            return factory
        if name == "uvloop":
            raise LoopUnavailable(
                "--loop uvloop: uvloop is not installed (pip install 'tricorn-asgi[uvloop]')"
            )
        return asyncio.new_event_loop
    raise LoopUnavailable(f"unknown event loop {name!r}; expected auto, asyncio or uvloop")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """"uvloop" or "asyncio", for logs."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


__all__ = ["LoopUnavailable", "loop_factory", "loop_name"]
