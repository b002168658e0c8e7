"""TLS, trusted proxy headers and the access log, through the real server."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from wsgi_support import ServerProcess, get, one_response, raw


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True,
                   timeout=60)
    return crt, key


@pytest.mark.parametrize("threads", ["1", "3"])
def test_tls(server_factory, cert: tuple[Path, Path], threads: str) -> None:  # type: ignore[no-untyped-def]
    crt, key = cert
    srv = server_factory("--certfile", str(crt), "--keyfile", str(key), "--threads", threads)
    assert srv.url.startswith("https://")
    ctx = ssl.create_default_context(cafile=str(crt))
    with httpx.Client(base_url=srv.url, verify=ctx) as client:
        env = client.get("/environ").json()
        assert env["wsgi.url_scheme"] == "https" and env["SERVER_PORT"] == str(srv.port)
        for size in (0, 10, 200_000):
            assert client.post("/echo", content=b"z" * size).content == b"z" * size
        r = client.get("/file?size=300000")  # file_wrapper over TLS: copied, not sendfile
        assert len(r.content) == 300000
        r = client.get("/stream?n=50")
        assert r.text.count("part") == 50
    # a plaintext request to the TLS port fails cleanly; the server lives on
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{srv.port}/", timeout=2)
    assert srv.alive()


# -------------------------------------------------------------------------------------- proxies


def env_via(srv: ServerProcess, headers: str) -> dict[str, str]:
    resp = one_response(raw(srv, get(path="/environ", extra=headers + "Connection: close\r\n")))
    assert resp.status == 200, resp
    return json.loads(resp.body)  # type: ignore[no-any-return]


def test_proxy_headers_from_trusted_peer(server: ServerProcess) -> None:
    # 127.0.0.1 is trusted by default
    env = env_via(server, "X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n"
                          "X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n")
    assert env["REMOTE_ADDR"] == "10.0.0.1"  # 10.0.0.1 is not trusted: it is the client
    assert env["wsgi.url_scheme"] == "https" and env["HTTP_HOST"] == "example.com"
    env = env_via(server, 'Forwarded: for="[2001:db8::1]:4711";proto=https;host=a.example\r\n')
    assert env["REMOTE_ADDR"] == "2001:db8::1" and env["REMOTE_PORT"] == "4711"
    assert env["wsgi.url_scheme"] == "https" and env["HTTP_HOST"] == "a.example"
    env = env_via(server, "X-Forwarded-Proto: javascript\r\n")
    assert env["wsgi.url_scheme"] == "http"


def test_contradictory_scheme_headers(server: ServerProcess) -> None:
    resp = one_response(raw(server, get(path="/environ",
                                        extra="X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n")))
    assert resp.status == 400


def test_proxy_headers_from_untrusted_peer(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory("--forwarded-allow-ips", "10.9.8.7,192.168.0.0/16")
    env = env_via(srv, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n")
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"  # still visible as a plain header
    srv = server_factory("--forwarded-allow-ips", "*")
    env = env_via(srv, "X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n")
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    srv = server_factory("--no-proxy-headers")
    env = env_via(srv, "X-Forwarded-For: 203.0.113.7\r\n")
    assert env["REMOTE_ADDR"] == "127.0.0.1"


# ----------------------------------------------------------------------------------- access log


def test_access_log_default_format(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "access.log"
    srv = server_factory("--access-logfile", str(log), "--threads", "2")
    raw(srv, get(path="/stream?n=2", extra="Referer: http://r/\r\nUser-Agent: ua\"x\r\n"))
    raw(srv, b"GET /%1b%5b31m%0d%0aFAKE HTTP/1.1\r\nHost: a\r\nUser-Agent: \xe9vil\r\n\r\n")
    raw(srv, get(path="/error"))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < 3:
        time.sleep(0.02)
    # lines are written after each response, so their order may differ from the requests'
    lines = sorted(log.read_text().splitlines(), key=lambda line: ("stream" not in line,
                                                                   "error" in line))
    assert len(lines) == 3
    assert lines[0].startswith("127.0.0.1 - - [")
    assert '"GET /stream?n=2 HTTP/1.1" 200 12 "http://r/" "ua\\"x"' in lines[0]
    assert "%1b%5b31m%0d%0aFAKE" in lines[1] and "\x1b" not in lines[1]  # P36: escaped, one line
    assert '"\\xe9vil"' in lines[1]
    assert '"GET /error HTTP/1.1" 500' in lines[2]


def test_access_log_json(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "access.json"
    srv = server_factory("--access-logfile", str(log), "--access-logformat", "json")
    raw(srv, b"GET /?q=\x22x HTTP/1.1\r\nHost: a\r\nUser-Agent: a\r\n\tb\r\n\r\n")  # obs-fold: 400
    raw(srv, get(path="/?a=1", extra="User-Agent: \xe9\r\n"))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not log.read_text().strip():
        time.sleep(0.02)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[-1]["path"] == "/" and records[-1]["query"] == "a=1"
    assert records[-1]["status"] == 200 and records[-1]["user_agent"] == "\\xe9"
    assert records[-1]["bytes"] == 12 and records[-1]["remote_addr"] == "127.0.0.1"


def test_no_access_log_by_default(server: ServerProcess) -> None:
    raw(server, get())
    assert "GET / HTTP/1.1" not in server.log()
