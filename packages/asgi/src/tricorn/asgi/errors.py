"""Exceptions tricorn.asgi raises into applications.

Invariants: `ClientDisconnected` is the only exception `send()` raises for a vanished peer (ASGI HTTP
spec 2.4: "a server-specific subclass of OSError"); the server recognises its own instances and never
logs them as application errors. `ASGIProtocolError` is raised for a message that breaks the ASGI
contract (wrong type or order, malformed field); it is a `RuntimeError`, like Uvicorn's.
"""

from __future__ import annotations


class ClientDisconnected(OSError):
    """The client went away: the response can no longer be delivered."""


class ASGIProtocolError(RuntimeError):
    """The application sent a message the ASGI contract does not allow at this point."""


__all__ = ["ASGIProtocolError", "ClientDisconnected"]
