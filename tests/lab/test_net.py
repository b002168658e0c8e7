"""The loopback guard: the lab never targets anything but loopback."""

from __future__ import annotations

import pytest

from lab.net import NotLoopbackError, base_url, ensure_loopback, free_port, http_get


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert ensure_loopback(host) == host.strip("[]")


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.10", "8.8.8.8", "0.0.0.0", "example.com", "::", ""])
def test_other_hosts_are_refused(host: str) -> None:
    with pytest.raises(NotLoopbackError):
        ensure_loopback(host)


def test_urls_bracket_ipv6() -> None:
    assert base_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert base_url("::1", 8000) == "http://[::1]:8000"
    with pytest.raises(NotLoopbackError):
        base_url("10.1.2.3", 80)


def test_free_port_and_probe_of_a_closed_port() -> None:
    port = free_port()
    assert 0 < port < 65536
    result = http_get("127.0.0.1", port, "/health", timeout=0.5)
    assert not result.ok and result.status is None and result.error
    with pytest.raises(NotLoopbackError):
        http_get("10.0.0.1", 80, "/")
