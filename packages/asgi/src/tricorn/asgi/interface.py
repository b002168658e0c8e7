"""Which interface an application speaks, and the adapter that makes it an ASGI 3 callable.

``--interface asgi3`` is used as is; ``asgi2`` (a class or callable taking the scope and returning
an instance awaited with ``(receive, send)``) is wrapped; ``wsgi`` is served from a bounded thread
pool (wsgi.py). ``auto`` decides from the object, without calling it: a coroutine function (or an
object whose ``__call__`` is one) is ASGI 3; a class is ASGI 2; otherwise the number of positional
parameters decides (3: ASGI 3, 1: ASGI 2, 2: looks like WSGI, which must be asked for explicitly).

Invariant: `adapt` never calls the application; an ambiguous object is an `InterfaceError`
with a message telling the user which ``--interface`` to pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from tricorn.core.logs import ErrorStream


class InterfaceError(Exception):
    """The application's interface cannot be used or guessed; `str(exc)` says what to do."""


def _positional_count(func: Callable[..., Any]) -> int | None:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    count = 0
    for param in sig.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
        elif param.kind is param.VAR_POSITIONAL:
            return None
    return count


def detect(app: object) -> str:
    """"asgi3" or "asgi2" for ``--interface auto`` (raises `InterfaceError` when unclear)."""
    if inspect.isclass(app):
        return "asgi2"
    if inspect.iscoroutinefunction(app):
        return "asgi3"
    call = getattr(app, "__call__", None)  # noqa: B004 - the attribute itself is inspected
    if call is not None and inspect.iscoroutinefunction(call):
        return "asgi3"
    count = _positional_count(app) if callable(app) else None
    if count == 3:
        return "asgi3"
    if count == 1:
        return "asgi2"
    if count == 2:
        raise InterfaceError(
            "the application takes two arguments, like a WSGI application; "
            "pass --interface wsgi (or --interface asgi3 if it is ASGI)"
        )
    raise InterfaceError(
        "cannot tell whether the application is ASGI 3 or ASGI 2; pass --interface asgi3 or asgi2"
    )


def asgi2_to_asgi3(app: Callable[[Scope], Any]) -> ASGIApp:
    """An ASGI 3 callable for an ASGI 2 application."""

    async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3


def adapt(app: Callable[..., Any], interface: str, *, wsgi_threads: int = 10,
          wsgi_errors: ErrorStream | None = None) -> tuple[ASGIApp, str]:
    """(the ASGI 3 callable to serve, the interface actually used). A WSGI application writes
    ``wsgi.errors`` to `wsgi_errors` (stderr when None)."""
    if interface == "auto":
        interface = detect(app)
    if interface == "asgi3":
        return app, interface
    if interface == "asgi2":
        return asgi2_to_asgi3(app), interface
    if interface == "wsgi":
        from .wsgi import WSGIAdapter

        return WSGIAdapter(app, threads=wsgi_threads, errors=wsgi_errors), interface
    raise InterfaceError(f"unknown interface {interface!r}")


__all__ = ["InterfaceError", "adapt", "asgi2_to_asgi3", "detect"]
