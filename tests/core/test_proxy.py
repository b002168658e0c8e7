"""tricorn.core.proxy: trusted peers, RFC 7239 Forwarded, X-Forwarded-* resolution."""

from __future__ import annotations

import pytest
from tricorn.core.proxy import (
    Forwarded,
    ProxyHeaderError,
    TrustedPeers,
    parse_forwarded,
    resolve,
)

LOCAL = TrustedPeers(["127.0.0.1", "::1"])


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(n.lower().encode(), v.encode("latin-1")) for n, v in pairs]


def test_trusted_peers() -> None:
    peers = TrustedPeers(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"])
    assert peers.trusts("10.1.2.3") and peers.trusts("192.168.1.7")
    assert not peers.trusts("192.168.1.8") and not peers.trusts("11.0.0.1")
    assert peers.trusts("2001:db8::5") and not peers.trusts("2001:db9::5")
    assert peers.trusts("::ffff:10.0.0.1")  # IPv4-mapped
    assert peers.trusts(None) and peers.trusts("")  # Unix-socket peers
    assert not peers.trusts("not-an-ip")
    assert TrustedPeers(["*"]).trusts("203.0.113.1")
    with pytest.raises(ValueError):
        TrustedPeers(["10.0.0.0/33"])
    assert not TrustedPeers([])


def test_parse_forwarded() -> None:
    assert parse_forwarded('for=192.0.2.60;proto=http;by=203.0.113.43') == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}]
    assert parse_forwarded('for="[2001:db8:cafe::17]:4711", For=unknown') == [
        {"for": "[2001:db8:cafe::17]:4711"}, {"for": "unknown"}]
    assert parse_forwarded('for="a\\"b"') == [{"for": 'a"b'}]
    for bad in ("for", "for=", "for=a;for=b", 'for="unterminated', "=x", "for=a b"):
        with pytest.raises(ValueError):
            parse_forwarded(bad)


def test_untrusted_peer_is_ignored() -> None:
    assert resolve(h(("X-Forwarded-For", "1.2.3.4")), "203.0.113.9", LOCAL) is None


def test_x_forwarded_for_walks_from_the_right() -> None:
    peers = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    fwd = resolve(h(("X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.2")), "127.0.0.1", peers)
    assert fwd == Forwarded(client_host="1.2.3.4")  # the spoofed 6.6.6.6 is never believed
    fwd = resolve(h(("X-Forwarded-For", "10.0.0.3, 10.0.0.2")), "127.0.0.1", peers)
    assert fwd is not None and fwd.client_host == "10.0.0.3"  # all trusted: leftmost
    fwd = resolve(h(("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "1.2.3.4")),
                  "127.0.0.1", LOCAL)
    assert fwd is not None and fwd.client_host == "1.2.3.4"  # repeated fields form one list
    fwd = resolve(h(("X-Forwarded-For", "1.2.3.4:5678")), "127.0.0.1", LOCAL)
    assert fwd == Forwarded(client_host="1.2.3.4", client_port=5678)
    assert resolve(h(("X-Forwarded-For", "garbage, 1.2.3.4")), "127.0.0.1", LOCAL) is None


def test_scheme_and_host() -> None:
    fwd = resolve(h(("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-Proto", "https, http"),
                    ("X-Forwarded-Host", "a.example, b.internal")), "127.0.0.1",
                  TrustedPeers(["127.0.0.1", "2.2.2.2"]))
    assert fwd == Forwarded("1.1.1.1", None, "https", "a.example")  # aligned with the client hop
    fwd = resolve(h(("X-Forwarded-Proto", "HTTPS")), "127.0.0.1", LOCAL)
    assert fwd == Forwarded(scheme="https")
    assert resolve(h(("X-Forwarded-Proto", "gopher")), "127.0.0.1", LOCAL) is None
    assert resolve(h(("X-Forwarded-Host", "a b")), "127.0.0.1", LOCAL) is None
    assert resolve(h(("X-Forwarded-Ssl", "on")), "127.0.0.1", LOCAL) == Forwarded(scheme="https")
    assert resolve(h(("X-Forwarded-Protocol", "ssl")), "::1", LOCAL) == Forwarded(scheme="https")


def test_contradictory_scheme_headers() -> None:
    with pytest.raises(ProxyHeaderError):
        resolve(h(("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")), "127.0.0.1", LOCAL)
    fwd = resolve(h(("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on")), "127.0.0.1", LOCAL)
    assert fwd == Forwarded(scheme="https")


def test_forwarded_wins() -> None:
    fwd = resolve(h(("Forwarded", 'for=1.2.3.4;proto=https;host="x.example:8443"'),
                    ("X-Forwarded-For", "9.9.9.9")), "127.0.0.1", LOCAL)
    assert fwd == Forwarded("1.2.3.4", None, "https", "x.example:8443")
    fwd = resolve(h(("Forwarded", "for=1.2.3.4, for=127.0.0.1;proto=http")), "127.0.0.1", LOCAL)
    assert fwd == Forwarded("1.2.3.4", None, None, None)
    fwd = resolve(h(("Forwarded", 'for=unknown;proto=https')), "127.0.0.1", LOCAL)
    assert fwd == Forwarded("unknown", None, "https", None)
    assert resolve(h(("Forwarded", "for=")), "127.0.0.1", LOCAL) is None  # malformed: ignored
