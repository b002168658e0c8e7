"""Lifespan, interface detection, loops, settings, TLS helpers and the worker contract, in
isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from asgi_apps import app as routes
from asgi_support import ServerThread
from tricorn.asgi import settings as asgi_settings
from tricorn.asgi.errors import ASGIProtocolError
from tricorn.asgi.interface import InterfaceError, adapt, detect
from tricorn.asgi.lifespan import Lifespan
from tricorn.asgi.loops import LoopUnavailable, loop_factory, loop_name
from tricorn.asgi.server import tick_interval
from tricorn.asgi.tls import subject_name
from tricorn.asgi.worker import AsgiWorker, max_requests
from tricorn.core.settings import REGISTRY, render_markdown
from tricorn.core.worker import WorkerContext

# ------------------------------------------------------------------------------------ lifespan


def run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


def test_lifespan_startup_state_and_shutdown() -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan" and scope["asgi"]["spec_version"] == "2.0"
        assert (await receive())["type"] == "lifespan.startup"
        scope["state"]["db"] = "pool"
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        events.append("shutdown")
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        state: dict[str, Any] = {}
        life = Lifespan(app, "on", state)
        assert await life.startup() is True
        assert state == {"db": "pool"}
        await life.shutdown()

    run(main())
    assert events == ["shutdown"]


@pytest.mark.parametrize("mode, expected", [("auto", True), ("on", False)])
def test_lifespan_app_raising_before_any_message(mode: str, expected: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError(scope["type"])

    async def main() -> bool:
        life = Lifespan(app, mode, {})
        ok = await life.startup()
        await life.shutdown()
        return ok

    assert run(main()) is expected


def test_lifespan_failed_message_and_timeout(caplog: Any) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no db"})

    async def hanging(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(10)

    async def main() -> tuple[bool, bool]:
        a = Lifespan(failing, "auto", {})
        b = Lifespan(hanging, "auto", {}, timeout=0.1)
        result = (await a.startup(), await b.startup())
        await a.shutdown()
        await b.shutdown()
        return result

    with caplog.at_level(logging.ERROR, logger="tricorn.error"):
        assert run(main()) == (False, False)
    assert "no db" in caplog.text and "did not complete within" in caplog.text


def test_lifespan_off_and_out_of_order_messages() -> None:
    errors: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "lifespan.shutdown.complete"})
        except ASGIProtocolError as exc:
            errors.append(exc)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> bool:
        off = Lifespan(app, "off", {})
        assert await off.startup() is True
        life = Lifespan(app, "on", {})
        ok = await life.startup()
        await life.shutdown()
        return ok

    assert run(main()) is True and len(errors) == 1
    with pytest.raises(ValueError):
        Lifespan(app, "sometimes", {})


def test_lifespan_app_returning_early_lets_the_server_serve() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def main() -> bool:
        life = Lifespan(app, "on", {})
        ok = await life.startup()
        await life.shutdown()
        return ok

    assert run(main()) is True


# ------------------------------------------------------------------------------------ interface


def test_interface_detection() -> None:
    async def asgi3(scope: Any, receive: Any, send: Any) -> None: ...

    class ASGI2:
        def __init__(self, scope: Any) -> None: ...

    class Callable3:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    def wsgi(environ: Any, start_response: Any) -> Any: ...

    def sync3(scope: Any, receive: Any, send: Any) -> Any: ...

    def asgi2_function(scope: Any) -> Any: ...

    assert detect(asgi3) == "asgi3" and detect(Callable3()) == "asgi3"
    assert detect(ASGI2) == "asgi2" and detect(asgi2_function) == "asgi2"
    assert detect(sync3) == "asgi3"
    with pytest.raises(InterfaceError, match="--interface wsgi"):
        detect(wsgi)
    assert adapt(asgi3, "auto")[1] == "asgi3"
    with pytest.raises(InterfaceError):
        adapt(asgi3, "cgi")


def test_asgi2_app_is_served(server: Any) -> None:
    class Legacy:
        def __init__(self, scope: Any) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": self.scope["path"].encode()})

    app, interface = adapt(Legacy, "auto")
    assert interface == "asgi2"
    srv = server(app)
    assert httpx.get(srv.url + "/legacy").text == "/legacy"


# ----------------------------------------------------------------------------- loops, settings


def test_loops() -> None:
    try:
        import uvloop  # noqa: F401

        expected = "uvloop"
    except ImportError:
        expected = "asyncio"
    loop = loop_factory("auto")()
    assert loop_name(loop) == expected  # auto = uvloop when installed
    loop.close()
    plain = loop_factory("asyncio")()
    assert loop_name(plain) == "asyncio"
    plain.close()
    with pytest.raises(LoopUnavailable):
        loop_factory("trio")


def test_settings_are_registered_for_the_command() -> None:
    cfg = REGISTRY.load("asgi", [
        "m:app", "--loop", "asyncio", "--lifespan", "off", "--interface", "asgi3", "--ws", "none",
        "--limit-concurrency", "10", "--max-requests", "100", "--max-requests-jitter", "10",
        "--timeout-keep-alive", "3", "--timeout-graceful-shutdown", "7", "--access-log",
    ], environ={})
    assert (cfg["loop"], cfg["lifespan"], cfg["interface"], cfg["ws"]) == (
        "asyncio", "off", "asgi3", "none")
    assert cfg["limit_concurrency"] == 10 and cfg["limit_max_requests"] == 100
    assert cfg["keep_alive"] == 3.0 and cfg["graceful_timeout"] == 7.0
    assert cfg["access_logfile"] == "-"
    assert 100 <= max_requests(cfg) <= 110
    env = REGISTRY.load("asgi", ["m:app"], environ={"TRICORN_LOOP": "uvloop"})
    assert env["loop"] == "uvloop" and env["access_logfile"] is None
    assert max_requests(env) == 0
    assert "### `limit_concurrency`" in render_markdown(REGISTRY)


def test_get_falls_back_to_the_default() -> None:
    cfg = REGISTRY.make("wsgi", {}, environ={})
    assert asgi_settings.get(cfg, asgi_settings.LOOP) == "auto"


def test_tick_interval() -> None:
    assert tick_interval(30, 5, 30) == 1.0
    assert tick_interval(0.2, 0) == pytest.approx(0.05)
    assert tick_interval(0.001) == 0.005
    assert tick_interval() == 1.0


def test_subject_name() -> None:
    cert = {"subject": ((("countryName", "FR"),), (("organizationName", "A, B"),),
                        (("commonName", "client"),))}
    assert subject_name(cert) == "CN=client,O=A\\, B,C=FR"
    assert subject_name({}) is None


# --------------------------------------------------------------------------- worker contract


class RecordingHeartbeat:
    def __init__(self) -> None:
        self.notified = 0
        self.is_ready = threading.Event()
        self.started = 0
        self.finished: list[float] = []

    def notify(self) -> None:
        self.notified += 1

    def ready(self) -> None:
        self.is_ready.set()

    def request_started(self) -> None:
        self.started += 1

    def request_finished(self, duration: float) -> None:
        self.finished.append(duration)


def test_worker_contract_heartbeat_from_the_loop() -> None:
    heartbeat = RecordingHeartbeat()
    srv = ServerThread(routes)
    srv.context.heartbeat = heartbeat  # type: ignore[assignment]
    cfg = srv.context.settings  # add the arbiter's "timeout", as its settings would have it
    srv.context.settings = dataclasses.replace(cfg, data=MappingProxyType({**cfg.data,
                                                                          "timeout": 0.4}))
    srv.thread.start()
    assert heartbeat.is_ready.wait(5)
    with httpx.Client(base_url=srv.url) as client:
        for _ in range(3):
            client.get("/")
    time.sleep(0.3)
    assert srv.stop() == 0
    assert heartbeat.notified >= 3
    assert heartbeat.started == 3 and len(heartbeat.finished) == 3


def test_worker_exit_codes() -> None:
    from tricorn.core.settings import BindAddress
    from tricorn.core.sockets import listen

    listener = listen(BindAddress("tcp", host="127.0.0.1", port=0))
    try:
        cfg = REGISTRY.make("asgi", {"app": "missing_module_xyz:app", "loop": "asyncio"})
        worker = AsgiWorker(WorkerContext(sockets=(listener.sock,), settings=cfg,
                                          app_spec="missing_module_xyz:app", ppid=0))
        assert worker.run() == 4

        def wsgi_like(environ: Any, start_response: Any) -> Any: ...

        cfg = REGISTRY.make("asgi", {"app": "x:y", "loop": "asyncio"})
        worker = AsgiWorker(WorkerContext(sockets=(listener.sock,), settings=cfg,
                                          app_spec="x:y", app=wsgi_like, ppid=0))
        assert worker.run() == 4
    finally:
        listener.close()
