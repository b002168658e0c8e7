"""End to end with a real browser: headless Chromium loads a page from tricorn-asgi, opens a
WebSocket to the same server (127.0.0.1), exchanges text and binary messages with permessage-deflate
as the browser negotiates it, checks the echoes, and reports back with an HTTP POST.

Chromium is the Debian package ``chromium``; when /usr/bin/chromium is missing the test installs it
with ``apt-get install -y chromium`` (root). If that fails the test is skipped, except under CI (the
``CI`` environment variable is set), where it fails. Every wait is bounded; the browser's process
group is killed at the end. Only loopback traffic: the browser's background services are off.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from asgi_apps import lifespan
from tricorn.core.websocket import PerMessageDeflate

CHROMIUM = Path("/usr/bin/chromium")
REPORT_TIMEOUT = 60.0

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>tricorn websocket</title></head>
<body><p id="status">running</p>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const nonce = params.get("nonce");
const seed = Number(params.get("seed"));
const text = "héllo " + nonce + " ✓ ünïcode";
const big = ("tricorn " + nonce + " compresses well. ").repeat(2000);
const bin = new Uint8Array(70000);
for (let i = 0; i < bin.length; i++) bin[i] = (i * 7 + seed + (i >> 8)) & 255;
function fnv1a(bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) { h ^= bytes[i]; h = Math.imul(h, 0x01000193) >>> 0; }
  return h >>> 0;
}
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
const result = {nonce: nonce, errors: []};
const received = [];
const ws = new WebSocket("ws://" + location.host + "/ws");
ws.binaryType = "arraybuffer";
ws.onopen = () => { ws.send(text); ws.send(big); ws.send(bin); };
ws.onerror = () => result.errors.push("websocket error");
ws.onclose = (e) => {
  if (received.length < 3) { result.errors.push("closed early: " + e.code); finish(); }
};
ws.onmessage = (e) => {
  received.push(e.data);
  if (received.length === 3) finish();
};
let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  result.extensions = ws.extensions;
  if (received.length === 3) {
    result.echoedText = received[0];
    result.textOk = received[0] === text;
    result.bigOk = received[1] === big;
    const echoed = new Uint8Array(received[2]);
    result.binOk = received[2] instanceof ArrayBuffer && sameBytes(echoed, bin);
    result.binLength = echoed.length;
    result.binFnv = fnv1a(echoed);
  }
  fetch("/report", {method: "POST", body: JSON.stringify(result)}).then(() => {
    document.getElementById("status").textContent = "done";
    ws.close(1000, "done");
  });
}
</script></body></html>
"""


def fnv1a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def expected_messages(nonce: str, seed: int) -> tuple[str, str, bytes]:
    text = f"héllo {nonce} ✓ ünïcode"
    big = f"tricorn {nonce} compresses well. " * 2000
    binary = bytes((i * 7 + seed + (i >> 8)) & 255 for i in range(70000))
    return text, big, binary


class Recorder:
    """The application: serves the page, echoes WebSocket messages, keeps what it saw."""

    def __init__(self) -> None:
        self.report: dict[str, Any] | None = None
        self.reported = threading.Event()
        self.ws_messages: list[str | bytes] = []
        self.offered: list[bytes] = []
        self.disconnect: int | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(scope, receive, send)
            return
        if scope["type"] == "websocket":
            self.offered += [v for k, v in scope["headers"] if k == b"sec-websocket-extensions"]
            await receive()
            await send({"type": "websocket.accept"})
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    self.disconnect = msg["code"]
                    return
                data = msg["text"] if msg.get("text") is not None else msg["bytes"]
                self.ws_messages.append(data)
                key = "text" if isinstance(data, str) else "bytes"
                await send({"type": "websocket.send", key: data})
        if scope["path"] == "/report":
            body = b""
            while True:
                msg = await receive()
                body += msg.get("body", b"")
                if not msg.get("more_body"):
                    break
            self.report = json.loads(body)
            self.reported.set()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == "/page":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/html; charset=utf-8")]})
            await send({"type": "http.response.body", "body": PAGE.encode()})
            return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def chromium() -> str:
    """The Chromium binary, installed with apt-get when missing (skip or, under CI, fail)."""
    found = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if found:
        return found
    problem = ""
    for argv in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = str(exc)
            break
        problem = done.stderr[-500:]
        if CHROMIUM.exists():
            return str(CHROMIUM)
    message = f"chromium is not installed and apt-get could not install it: {problem}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_chromium_echo_with_permessage_deflate(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = chromium()
    inflated: list[tuple[int, int]] = []  # (compressed, inflated) sizes the server saw
    deflated: list[tuple[int, int]] = []
    real_decompress = PerMessageDeflate.decompress
    real_compress = PerMessageDeflate.compress

    def decompress(self: PerMessageDeflate, data: bytes, max_size: int) -> bytes:
        out = real_decompress(self, data, max_size)
        inflated.append((len(data), len(out)))
        return out

    def compress(self: PerMessageDeflate, data: bytes) -> bytes:
        out = real_compress(self, data)
        deflated.append((len(data), len(out)))
        return out

    monkeypatch.setattr(PerMessageDeflate, "decompress", decompress)
    monkeypatch.setattr(PerMessageDeflate, "compress", compress)
    try:
        import uvloop  # noqa: F401
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    recorder = Recorder()
    srv = server(recorder, loop=loop)
    nonce = os.urandom(6).hex()
    seed = int.from_bytes(os.urandom(1), "big")
    url = f"{srv.url}/page?nonce={nonce}&seed={seed}"
    with tempfile.TemporaryDirectory(prefix="tricorn-chromium-") as profile:
        argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-domain-reliability", "--no-pings",
                "--metrics-recording-only", "--disable-breakpad", f"--user-data-dir={profile}",
                url]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            got = recorder.reported.wait(REPORT_TIMEOUT)
            deadline = time.monotonic() + 10  # the page closes the WebSocket after reporting
            while recorder.disconnect is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out = proc.communicate(timeout=10)[0]
    assert got, f"no report from the page within {REPORT_TIMEOUT} s; chromium said:\n" \
                f"{out.decode(errors='replace')[-3000:]}"
    report = recorder.report
    assert report is not None
    text, big, binary = expected_messages(nonce, seed)
    # the browser's side: every echo equal to what it sent, deflate negotiated
    assert report["errors"] == [], report
    assert report["textOk"] and report["bigOk"] and report["binOk"], report
    assert report["echoedText"] == text
    assert report["binLength"] == len(binary) and report["binFnv"] == fnv1a(binary)
    assert report["extensions"].startswith("permessage-deflate"), report["extensions"]
    # the server's side: the messages arrived intact, compressed on the wire both ways
    assert recorder.ws_messages == [text, big, binary]
    assert any(b"permessage-deflate" in offer for offer in recorder.offered)
    assert any(size_in < size_out for size_in, size_out in inflated), inflated  # the browser's
    assert any(size_out < size_in / 10 for size_in, size_out in deflated), deflated  # ours
    assert recorder.disconnect == 1000
