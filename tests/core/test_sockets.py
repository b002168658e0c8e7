"""tricorn.core.sockets: listening sockets from bind addresses, and the TLS context."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from tricorn.core.settings import REGISTRY, parse_bind
from tricorn.core.sockets import (
    ListenError,
    listen,
    listen_all,
    listeners_from_settings,
    ssl_context,
)


def test_tcp_port_zero_reports_the_real_port() -> None:
    listener = listen(parse_bind("127.0.0.1:0"), backlog=8)
    try:
        assert listener.address.port != 0
        assert listener.url() == f"http://127.0.0.1:{listener.address.port}"
        assert listener.url(tls=True).startswith("https://")
        assert not listener.sock.getblocking()
        assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        with socket.create_connection(("127.0.0.1", listener.address.port), timeout=2):
            pass
    finally:
        listener.close()


def test_ipv6_is_v6only() -> None:
    try:
        listener = listen(parse_bind("[::1]:0"))
    except ListenError:
        pytest.skip("no IPv6 loopback")
    try:
        assert listener.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert listener.url().startswith("http://[::1]:")
    finally:
        listener.close()


def test_reuse_port() -> None:
    a = listen(parse_bind("127.0.0.1:0"), reuse_port=True)
    try:
        b = listen(parse_bind(f"127.0.0.1:{a.address.port}"), reuse_port=True)
        b.close()
    finally:
        a.close()


def test_address_in_use() -> None:
    a = listen(parse_bind("127.0.0.1:0"))
    try:
        with pytest.raises(ListenError, match="cannot listen on 127.0.0.1"):
            listen(parse_bind(f"127.0.0.1:{a.address.port}"))
    finally:
        a.close()


def test_unix_socket_stale_and_live(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # leaves a stale socket file
    listener = listen(parse_bind(f"unix:{path}"))
    try:
        assert listener.url() == f"unix:{path}"
        with pytest.raises(ListenError, match="already in use"):
            listen(parse_bind(f"unix:{path}"))
    finally:
        listener.close()
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(ListenError, match="not a socket"):
        listen(parse_bind(f"unix:{path}"))


def test_unix_close_leaves_a_successor_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    first = listen(parse_bind(f"unix:{path}"))
    first.sock.close()
    os.unlink(path)
    second = listen(parse_bind(f"unix:{path}"))
    try:
        first.close()  # not its file any more
        assert path.exists()
    finally:
        second.close()


def test_inherited_fd() -> None:
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen(4)
    dup = os.dup(raw.fileno())
    try:
        listener = listen(parse_bind(f"fd://{dup}"))
        assert listener.address.fd == dup and listener.address.port == raw.getsockname()[1]
        assert "(fd://" in listener.url()
        listener.close()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(ListenError, match="stream"):
            listen(parse_bind(f"fd://{udp.fileno()}"))
        udp.close()
    finally:
        raw.close()


def test_listen_all_is_all_or_nothing() -> None:
    a = listen(parse_bind("127.0.0.1:0"))
    try:
        with pytest.raises(ListenError):
            listen_all([parse_bind("127.0.0.1:0"), parse_bind(f"127.0.0.1:{a.address.port}")])
    finally:
        a.close()


def test_from_settings() -> None:
    cfg = REGISTRY.make("wsgi", {"bind": ["127.0.0.1:0"], "backlog": 16})
    listeners = listeners_from_settings(cfg)
    try:
        assert len(listeners) == 1 and listeners[0].address.port > 0
    finally:
        for listener in listeners:
            listener.close()


def test_ssl_context(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl_context(str(crt), str(key), ca_certs=str(crt), cert_reqs=2)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValueError, match="cannot load certificate"):
        ssl_context(str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError):
        ssl_context(str(crt), str(key), cert_reqs=7)
