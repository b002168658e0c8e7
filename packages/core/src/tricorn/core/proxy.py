"""Proxy headers: who the client is, when a trusted reverse proxy says so.

`TrustedPeers` holds the ``forwarded_allow_ips`` setting (IP addresses, CIDR networks, ``*``) and
answers "may this peer speak for the client?". `resolve` reads a request's proxy headers from such a
peer: RFC 7239 ``Forwarded``, or ``X-Forwarded-For`` / ``X-Forwarded-Proto`` / ``X-Forwarded-Host``
(plus Gunicorn's secure-scheme headers ``X-Forwarded-Ssl: on`` and ``X-Forwarded-Protocol: ssl``).

Rules (the invariants):
- Proxy headers from an untrusted peer are never interpreted (they stay ordinary request headers).
  A Unix-socket peer is trusted: only local processes with access to the socket file can connect.
- The client is found by walking the forwarding chain from the right (the hop nearest to us),
  skipping addresses that are themselves trusted proxies; the first untrusted hop is the client.
  With ``*`` every hop is trusted, so the leftmost hop is the client. A client can therefore prepend
  whatever it likes to X-Forwarded-For without being believed.
- Scheme and host are taken from the same hop as the client when the lists line up, else from the
  rightmost value (the one our direct peer set). Values that are not a known scheme or a valid host
  are ignored, never passed on.
- If ``Forwarded`` is present it wins and the X-Forwarded-* headers are ignored.
- Contradictory scheme headers from a trusted peer (``X-Forwarded-Proto: https`` with
  ``X-Forwarded-Ssl: off``) raise `ProxyHeaderError`: the server answers 400 (Gunicorn does too).
- Malformed ``Forwarded`` / ``X-Forwarded-For`` values are ignored as a whole (the peer stays the
  client); nothing here raises on malformed input except for the scheme contradiction above.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Forwarded",
    "ProxyHeaderError",
    "TrustedPeers",
    "PROXY_HEADER_NAMES",
    "parse_forwarded",
    "resolve",
]

PROXY_HEADER_NAMES: Final = frozenset({
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-ssl",
    b"x-forwarded-protocol",
})
"""Lower-case names of every header `resolve` looks at."""

_SCHEMES: Final = {"http": "http", "https": "https", "ws": "ws", "wss": "wss"}
_HOST: Final = re.compile(r"(?:[A-Za-z0-9_.~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUOTED: Final = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*)"')
_CACHE_MAX: Final = 1024


class ProxyHeaderError(ValueError):
    """A trusted proxy sent contradictory scheme headers (answer 400)."""

    status = 400


class TrustedPeers:
    """The peers allowed to send proxy headers: ``TrustedPeers(["127.0.0.1", "10.0.0.0/8"])``.

    ``"*"`` trusts everyone. `trusts(host)` takes the peer's IP text; None or "" (a Unix-socket
    peer) is trusted. Answers are cached (bounded), so a hot path pays a dict lookup.
    """

    __slots__ = ("everyone", "_networks", "_cache")

    def __init__(self, entries: Iterable[str]) -> None:
        self.everyone = False
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
                continue
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address, a CIDR network or '*'") from None
        self._networks = tuple(nets)
        self._cache: dict[str, bool] = {}

    def trusts(self, host: str | None) -> bool:
        if not host or self.everyone:
            return True
        known = self._cache.get(host)
        if known is not None:
            return known
        answer = self._lookup(host)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[host] = answer
        return answer

    def _lookup(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped = ip.ipv4_mapped
            if any(mapped in net for net in self._networks):
                return True
        return any(ip in net for net in self._networks)

    def __bool__(self) -> bool:
        return self.everyone or bool(self._networks)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What trusted proxy headers said; None fields were not given (keep the connection's)."""

    client_host: str | None = None
    client_port: int | None = None
    scheme: str | None = None
    """"http", "https", "ws" or "wss" (lower case)."""
    host: str | None = None
    """The Host the client asked for, ``name[:port]``."""


# --------------------------------------------------------------------------------------------------
# Parsing


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """The elements of a ``Forwarded`` value (RFC 7239 section 4), left to right; each maps the
    lower-case parameter name to its (unquoted) value. Raises `ValueError` when malformed."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos = 0
    n = len(value)
    while True:
        while pos < n and value[pos] in " \t":
            pos += 1
        if pos < n and value[pos] not in ",;":
            m = _TOKEN.match(value, pos)
            if m is None:
                raise ValueError(f"expected a parameter name at {pos}")
            name = m.group().lower()
            pos = m.end()
            if pos >= n or value[pos] != "=":
                raise ValueError(f"expected '=' after {name!r}")
            pos += 1
            if pos < n and value[pos] == '"':
                q = _QUOTED.match(value, pos)
                if q is None:
                    raise ValueError(f"bad quoted string at {pos}")
                param = re.sub(r"\\(.)", r"\1", q.group(1))
                pos = q.end()
            else:
                t = _TOKEN.match(value, pos)
                if t is None:
                    raise ValueError(f"expected a value for {name!r}")
                param = t.group()
                pos = t.end()
            if name in current:
                raise ValueError(f"parameter {name!r} repeated in one element")
            current[name] = param
            while pos < n and value[pos] in " \t":
                pos += 1
        if pos >= n:
            elements.append(current)
            return elements
        sep = value[pos]
        pos += 1
        if sep == ",":
            elements.append(current)
            current = {}
        elif sep != ";":
            raise ValueError(f"unexpected {sep!r} at {pos - 1}")


def _node(text: str) -> tuple[str, int | None] | None:
    """A node (``for=``) or an X-Forwarded-For item: (host, port or None); None if malformed.
    Hosts are IP text; RFC 7239 ``unknown`` and obfuscated ``_names`` are kept as given."""
    text = text.strip()
    if not text:
        return None
    port: int | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if p.isdigit():
            port = int(p)
        elif not p.startswith("_"):
            return None
    else:
        host = text
    if host == "unknown" or host.startswith("_"):
        return (host, port) if _TOKEN.fullmatch(host) else None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    if port is not None and not 0 <= port <= 65535:
        return None
    return host, port


def _valid_host(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text if _HOST.match(text) else None


def _scheme(text: str | None) -> str | None:
    if text is None:
        return None
    return _SCHEMES.get(text.strip().lower())


def _pick(values: list[str], index: int, count: int) -> str | None:
    """The value for hop `index` of `count` hops: aligned when the lists match, else rightmost."""
    if not values:
        return None
    if len(values) == count:
        return values[index]
    return values[-1]


def _walk(hops: Sequence[tuple[str, int | None]], trusted: TrustedPeers) -> int:
    """The index of the client among `hops` (see the module rules)."""
    for i in range(len(hops) - 1, -1, -1):
        if not trusted.trusts(hops[i][0]) or hops[i][0] == "unknown" or hops[i][0][0] == "_":
            return i
    return 0


# --------------------------------------------------------------------------------------------------
# Resolution


def _joined(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    found = [v for n, v in headers if n == name]
    if not found:
        return None
    return ",".join(v.decode("latin-1") for v in found)


def _items(value: str | None) -> list[str]:
    if value is None:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def _secure_scheme(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """Gunicorn's secure_scheme_headers: each present header votes http or https."""
    votes: set[str] = set()
    for name, value in headers:
        if name == b"x-forwarded-ssl":
            votes.add("https" if value.strip().lower() == b"on" else "http")
        elif name == b"x-forwarded-protocol":
            votes.add("https" if value.strip().lower() == b"ssl" else "http")
        elif name == b"x-forwarded-proto":
            items = _items(value.decode("latin-1"))
            scheme = _scheme(items[-1]) if items else None
            if scheme is not None:
                votes.add("https" if scheme in ("https", "wss") else "http")
    if len(votes) > 1:
        raise ProxyHeaderError("contradictory X-Forwarded-Proto / -Ssl / -Protocol headers")
    return votes.pop() if votes else None


def resolve(
    headers: Sequence[tuple[bytes, bytes]], peer_host: str | None, trusted: TrustedPeers
) -> Forwarded | None:
    """What the proxy headers of a request from `peer_host` say, or None (untrusted peer, or no
    usable proxy header). `headers` are (lower-case name, value) pairs as parsed.
    Raises `ProxyHeaderError` for contradictory scheme headers."""
    if not trusted.trusts(peer_host):
        return None
    forwarded = _joined(headers, b"forwarded")
    if forwarded is not None:
        return _from_forwarded(forwarded, trusted)
    xff = _items(_joined(headers, b"x-forwarded-for"))
    hops = [_node(item) for item in xff]
    client: tuple[str, int | None] | None = None
    index, count = 0, 0
    if hops and all(h is not None for h in hops):
        valid = [h for h in hops if h is not None]
        index, count = _walk(valid, trusted), len(valid)
        client = valid[index]
    protos = _items(_joined(headers, b"x-forwarded-proto"))
    scheme = _scheme(_pick(protos, index, count))
    secure = _secure_scheme(headers)
    if scheme is None:
        scheme = secure
    hosts = _items(_joined(headers, b"x-forwarded-host"))
    host = _valid_host(_pick(hosts, index, count))
    if client is None and scheme is None and host is None:
        return None
    return Forwarded(
        client_host=client[0] if client else None,
        client_port=client[1] if client else None,
        scheme=scheme,
        host=host,
    )


def _from_forwarded(value: str, trusted: TrustedPeers) -> Forwarded | None:
    try:
        elements = parse_forwarded(value)
    except ValueError:
        return None
    if not elements:
        return None
    nodes = [_node(e["for"]) if "for" in e else None for e in elements]
    index = len(elements) - 1
    client: tuple[str, int | None] | None = None
    if all(n is not None for n in nodes):
        valid = [n for n in nodes if n is not None]
        index = _walk(valid, trusted)
        client = valid[index]
    element = elements[index]
    scheme = _scheme(element.get("proto"))
    host = _valid_host(element.get("host"))
    if client is None and scheme is None and host is None:
        return None
    return Forwarded(
        client_host=client[0] if client else None,
        client_port=client[1] if client else None,
        scheme=scheme,
        host=host,
    )
