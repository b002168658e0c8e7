"""Real frameworks (Flask, Django) through the real server, both worker classes."""

from __future__ import annotations

import hashlib

import httpx
import pytest


@pytest.mark.parametrize("threads", ["1", "4"])
def test_flask(server_factory, threads: str) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("flask")
    srv = server_factory("--threads", threads, "--root-path", "/app",
                         app="tricorn_flask_app:app")
    with httpx.Client(base_url=f"{srv.url}/app") as c:
        assert c.get("/").text == "flask ok"
        r = c.post("/json?x=1", json={"a": [1, 2]}, headers={"X-Forwarded-Proto": "https"})
        assert r.json() == {"got": {"a": [1, 2]}, "args": {"x": "1"}, "scheme": "https",
                            "remote": "127.0.0.1"}
        payload = bytes(range(256)) * 4000
        r = c.post("/form", data={"field": "v"}, files={"file": ("f.bin", payload)})
        assert r.json() == {"field": "v", "name": "f.bin", "size": len(payload),
                            "sha256": hashlib.sha256(payload).hexdigest()}
        r = c.get("/stream")
        assert r.text == "".join(f"chunk{i}\n" for i in range(5))
        assert r.headers.get("transfer-encoding") == "chunked"
        r = c.get("/cookie", headers={"Cookie": "a=1"})
        assert r.json() == {"seen": "1"} and "b=2" in r.headers["set-cookie"]
        assert c.get("/boom").status_code == 500
        assert c.head("/").status_code == 200
        assert c.get("/").text == "flask ok"  # the worker survived
    assert "flask view failed" in srv.log()


@pytest.mark.parametrize("threads", ["1", "4"])
def test_django(server_factory, threads: str) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("django")
    srv = server_factory("--threads", threads, app="tricorn_django_app:application")
    with httpx.Client(base_url=srv.url) as c:
        assert c.get("/").text == "django ok"
        r = c.post("/echo?q=1", json={"k": "v"}, headers={"Host": "example.test"})
        body = r.json()
        assert body["method"] == "POST" and body["json"] == {"k": "v"}
        assert body["query"] == {"q": "1"} and body["host"] == "example.test"
        assert body["meta_remote"] == "127.0.0.1" and body["secure"] is False
        r = c.post("/upload", data={"field": "x"}, files={"file": ("a.txt", b"y" * 300000)})
        assert r.json() == {"field": "x", "size": 300000}
        assert c.get("/stream").text == "row0\nrow1\nrow2\nrow3\n"
        assert c.get("/boom").status_code == 500
        assert c.get("/").text == "django ok"
