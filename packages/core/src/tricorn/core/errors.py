"""Errors of tricorn.core. Every protocol error carries the HTTP status a server should answer with.

Invariants: a `ProtocolError` is raised only for input the peer sent (status 4xx/5xx hint); a
`LocalProtocolError` only for something our own side (the application) asked for, which a server turns
into a 500 without sending the offending bytes.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer sent something we refuse. `status` is the response to send before closing."""

    def __init__(self, status: int, reason: str, offset: int = -1) -> None:
        super().__init__(f"{status} {reason}" + (f" at byte {offset}" if offset >= 0 else ""))
        self.status = status
        self.reason = reason
        self.offset = offset


class LocalProtocolError(Exception):
    """The application asked for something that would break HTTP (bad header, too many bytes...)."""
