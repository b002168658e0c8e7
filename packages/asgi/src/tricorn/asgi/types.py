"""Type names for the ASGI 3 interface, as the rest of tricorn.asgi uses them.

Messages are plain dicts (the ASGI spec's shape); these aliases only document intent and keep
annotations short. Nothing here runs at request time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]
