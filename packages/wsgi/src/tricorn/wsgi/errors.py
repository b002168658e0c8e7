"""Exceptions tricorn-wsgi raises into applications, and between its own modules.

Invariants:
- What the *client* did wrong while the application reads the body is a `RequestBodyError`
  (malformed chunked framing: 400; body over the limit: 413) or a `ClientDisconnected` (the peer
  closed, reset, or went silent for ``timeout_body_read``). Both are `OSError`s, as a file read error
  would be, so applications that handle I/O errors handle these.
- What the *application* did wrong (start_response misuse, hop-by-hop headers, a body longer than
  its Content-Length, non-bytes body items) is a `WSGIError`; the client gets a 500 if the head was
  not sent yet, else the connection is closed.
"""

from __future__ import annotations


class ClientDisconnected(OSError):
    """The client closed or reset the connection, or stopped sending/receiving for too long."""


class ClientTimeout(ClientDisconnected):
    """The client sent or took nothing for the allowed time."""


class RequestBodyError(OSError):
    """The request body is invalid (400) or too large (413); `status` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class WSGIError(Exception):
    """The application broke the WSGI protocol (PEP 3333) or HTTP's rules for responses."""
