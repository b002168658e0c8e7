"""The limits the HTTP/1.1 parser enforces, as one plain record.

`ParserLimits` is what the parser and the sans-I/O connection read;
`tricorn.core.settings.parser_limits` builds it from the loaded settings (the user-facing spellings,
with Gunicorn's "0 means ..." rules, live there, not here).

Invariants:
- Every field is already *effective*: no field uses 0 to mean "the default"; the only special
  value is ``max_body_size == 0``, which means "no limit on the request body".
- All sizes are in bytes and are checked before the bytes they cover are buffered.
- Sizes fit the C struct: ``max_body_size`` below 2**63, every other size below 2**31.
- The record is immutable and cheap to share between threads and connections.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ParserLimits"]


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Limits for one connection's parser. Defaults equal the settings' defaults."""

    max_request_line: int = 4094
    """Longest request line (method, target, version), excluding the CRLF. Over it: 414."""
    max_fields: int = 100
    """Most header fields in one head (trailer fields count separately). Over it: 431."""
    max_field_size: int = 8188
    """Longest single header field line ("name: value"), excluding the CRLF. Over it: 431.
    (Gunicorn's limit_request_field_size counts the CRLF: its default 8190 is this 8188.)"""
    max_head_size: int = 65536
    """Longest whole head (or trailer section), CRLFs and the blank line included. Over it: 431."""
    max_body_size: int = 0
    """Largest request body (decoded chunked data or Content-Length); 0 = no limit. Over it: 413."""
    max_chunk_line: int = 4096
    """Longest chunk-size line (size and extensions), excluding the CRLF. Over it: 400."""
    max_chunk_ext: int = 65536
    """Most chunk-extension bytes summed over one message. Over it: 400."""
    unfold: bool = False
    """Accept obsolete line folding (obs-fold) in header values, replacing it by one space."""
    any_method: bool = False
    """Accept any token as a method, not only conventional upper-case method names."""
    host_optional: bool = False
    """Accept an HTTP/1.1 request without a Host header (normally 400)."""
