"""Loopback-only networking helpers: the guard, free ports, URLs, one-shot HTTP probes.

Invariant: every address the lab sends traffic to passes `ensure_loopback` first; the helpers here
refuse anything else with `NotLoopbackError`.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"localhost"})


class NotLoopbackError(ValueError):
    """The lab only ever targets servers it started itself on loopback."""


def ensure_loopback(host: str) -> str:
    """Return `host` (brackets stripped) if it is a loopback address; raise NotLoopbackError otherwise."""
    bare = host.strip("[]")
    if bare in LOOPBACK_NAMES:
        return bare
    try:
        address = ipaddress.ip_address(bare)
    except ValueError as exc:
        raise NotLoopbackError(f"{host!r} is not a loopback address") from exc
    if not address.is_loopback:
        raise NotLoopbackError(f"{host!r} is not a loopback address (the lab targets loopback only)")
    return bare


def url_host(host: str) -> str:
    """`host` as it appears in a URL (IPv6 in brackets)."""
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def base_url(host: str, port: int) -> str:
    """`http://HOST:PORT` for a loopback host."""
    return f"http://{url_host(ensure_loopback(host))}:{port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on `host` a moment ago (bind to 0, read, close)."""
    bare = ensure_loopback(host)
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((bare, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one HTTP request made by `http_get`."""

    status: int | None
    body: bytes
    error: str | None
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def http_get(host: str, port: int, path: str, timeout: float = 2.0) -> ProbeResult:
    """One GET request on a new connection; never raises for network errors."""
    bare = ensure_loopback(host)
    started = time.monotonic()
    connection = http.client.HTTPConnection(bare, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        return ProbeResult(response.status, body, None, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(None, b"", f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    finally:
        connection.close()
