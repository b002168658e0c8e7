"""Locust user classes, one per workload, each checking what the server answered.

Every HTTP user is a FastHttpUser (geventhttpclient: the cheapest client Locust has, so the generator
is less often the bottleneck) with no think time, except the mixed profile (think time) and the ramp
(paced per user). A response counts as a failure when its status or its body is not what the endpoint
must answer, so "no failures" means the server really served the workload.

Importing this module seeds `random` for this process (LAB_SEED, LAB_WORKER_INDEX) and sets the window
of Locust's "current" percentiles (LAB_PERCENTILE_WINDOW_S), which the history CSV reports each second,
makes workers report to the master every second, and the master flush its CSV files every second.
"""

from __future__ import annotations

import http.client
import json
import random
import string
import time
import zlib
from typing import Any

import locust.runners
import locust.stats
import websocket
from locust import FastHttpUser, User, between, constant, constant_throughput, events, task

from lab.loadgen.settings import from_environ

SETTINGS = from_environ()
random.seed(SETTINGS.process_seed)
locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = SETTINGS.percentile_window_s
# Workers report to the master every second (default 3 s), so the history has one point per second.
locust.runners.WORKER_REPORT_INTERVAL = 1.0
# The master flushes its CSVs every second (default 5 s), so the lab can follow the run live.
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0

HELLO = b"Hello from the tricorn lab!\n"
DOWNLOAD_SIZE = 64 * 1024
UPLOAD_BODY = random.Random(SETTINGS.process_seed).randbytes(SETTINGS.upload_bytes)
UPLOAD_CRC = zlib.crc32(UPLOAD_BODY)
SMALL_UPLOAD = UPLOAD_BODY[: 64 * 1024]
SMALL_UPLOAD_CRC = zlib.crc32(SMALL_UPLOAD)
WS_PAYLOAD_BYTES = 64


def _expect(
    response: Any,
    *,
    status: int = 200,
    body: bytes | None = None,
    length: int | None = None,
    json_key: str | None = None,
    json_value: Any = None,
) -> None:
    """Mark a caught response failed unless it matches."""
    if response.status_code != status:
        response.failure(f"status {response.status_code}")
    elif body is not None and response.content != body:
        response.failure("unexpected body")
    elif length is not None and len(response.content or b"") != length:
        response.failure(f"body length {len(response.content or b'')} != {length}")
    elif json_key is not None:
        try:
            value = json.loads(response.content)[json_key]
        except (ValueError, KeyError, TypeError):
            response.failure(f"no {json_key!r} in the JSON answer")
            return
        if json_value is not None and value != json_value:
            response.failure(f"{json_key} = {value!r}, expected {json_value!r}")
        else:
            response.success()
    else:
        response.success()


class LabHttpUser(FastHttpUser):
    """Base of the HTTP users: no think time, generous timeouts (slow answers are data, not errors)."""

    abstract = True
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    def _hello(self) -> None:
        with self.client.get("/", name="GET /", catch_response=True) as response:
            _expect(response, body=HELLO)

    def _json(self) -> None:
        with self.client.get("/json", name="GET /json", catch_response=True) as response:
            _expect(response, json_key="count", json_value=20)

    def _download(self) -> None:
        with self.client.get("/download", name="GET /download", catch_response=True) as response:
            _expect(response, length=DOWNLOAD_SIZE)

    def _upload(self, body: bytes, crc: int, name: str) -> None:
        with self.client.post(
            "/upload",
            data=body,  # type: ignore[arg-type]  # geventhttpclient sends bytes as they are
            name=name,
            catch_response=True,
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            _expect(response, json_key="crc32", json_value=crc)

    def _io(self) -> None:
        with self.client.get("/io", name="GET /io", catch_response=True) as response:
            _expect(response, json_key="upstream", json_value="ok")

    def _cpu(self) -> None:
        with self.client.get("/cpu", name="GET /cpu", catch_response=True) as response:
            _expect(response, json_key="rounds", json_value=20_000)


class HelloUser(LabHttpUser):
    @task
    def get_hello(self) -> None:
        self._hello()


class JsonUser(LabHttpUser):
    @task
    def get_json(self) -> None:
        self._json()


class DownloadUser(LabHttpUser):
    @task
    def get_download(self) -> None:
        self._download()


class UploadUser(LabHttpUser):
    @task
    def post_upload(self) -> None:
        self._upload(UPLOAD_BODY, UPLOAD_CRC, "POST /upload 1MiB")


class IoUser(LabHttpUser):
    @task
    def get_io(self) -> None:
        self._io()


class CpuUser(LabHttpUser):
    @task
    def get_cpu(self) -> None:
        self._cpu()


class MixedUser(LabHttpUser):
    """A realistic profile: think time between requests, mostly small requests."""

    wait_time = between(0.01, 0.05)

    @task(30)
    def mix_hello(self) -> None:
        self._hello()

    @task(30)
    def mix_json(self) -> None:
        self._json()

    @task(15)
    def mix_io(self) -> None:
        self._io()

    @task(10)
    def mix_download(self) -> None:
        self._download()

    @task(10)
    def mix_cpu(self) -> None:
        self._cpu()

    @task(5)
    def mix_upload(self) -> None:
        self._upload(SMALL_UPLOAD, SMALL_UPLOAD_CRC, "POST /upload 64KiB")


class RampUser(LabHttpUser):
    """Paced at LAB_STEP_USER_RPS requests/s each, so offered load grows with the user count."""

    wait_time = constant_throughput(SETTINGS.step_user_rps)

    @task
    def get_json(self) -> None:
        self._json()


class NoRetryHelloUser(User):
    """GET / over one keep-alive connection per user, with no retry: a request the server loses (a
    killed worker, a reload that drops connections) is a failure, where FastHttpUser would silently
    retry an idempotent GET. http.client on Locust's gevent-patched sockets."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.connection: http.client.HTTPConnection | None = None

    def _fire(self, started: float, length: int, exception: BaseException | None) -> None:
        events.request.fire(  # type: ignore[no-untyped-call]
            request_type="GET",
            name="GET / (no retry)",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    @task
    def get_hello(self) -> None:
        connection = self.connection
        if connection is None:
            address = (self.host or "").removeprefix("http://").rstrip("/")
            host, _, port = address.rpartition(":")
            connection = self.connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
        started = time.perf_counter()
        error: BaseException | None = None
        body = b""
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or body != HELLO:
                error = ValueError(f"status {response.status}, {len(body)} bytes")
            if response.will_close:
                connection.close()
                self.connection = None
        except (OSError, http.client.HTTPException) as exc:
            error = exc
            connection.close()
            self.connection = None
        self._fire(started, len(body), error)

    def on_stop(self) -> None:
        if self.connection is not None:
            self.connection.close()


class WebSocketUser(User):
    """One WebSocket per user: send 64 random letters, wait for the same text back (reported as WS)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.ws: websocket.WebSocket | None = None
        self._connect()

    def _fire(self, name: str, started: float, length: int, exception: BaseException | None) -> None:
        events.request.fire(  # type: ignore[no-untyped-call]
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    def _connect(self) -> None:
        url = (self.host or "").replace("http://", "ws://", 1).rstrip("/") + "/ws"
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(url, timeout=30, enable_multithread=False)
            self._fire("WS connect", started, 0, None)
        except Exception as exc:  # noqa: BLE001 - every connect error is a reported failure
            self.ws = None
            self._fire("WS connect", started, 0, exc)
            time.sleep(0.1)

    @task
    def echo(self) -> None:
        if self.ws is None:
            self._connect()
            return
        payload = "".join(random.choices(string.ascii_letters, k=WS_PAYLOAD_BYTES))
        started = time.perf_counter()
        error: BaseException | None
        try:
            self.ws.send(payload)
            reply = self.ws.recv()
            error = None if reply == payload else ValueError("echo differs from what was sent")
        except Exception as exc:  # noqa: BLE001 - a broken socket is a failure, then reconnect
            error = exc
            self.ws = None
        self._fire("WS echo", started, len(payload), error)

    def on_stop(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - closing a dead socket at the end is not a result
                pass
