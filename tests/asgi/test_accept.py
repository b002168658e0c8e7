"""The fair acceptor (tricorn.asgi.accept): a few connections per wake-up, handed to the loop; and
the worker's choice of it (only when sibling workers share the sockets). TLS through it, with two
real workers: tests/arbiter/test_servers.py."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from tricorn.asgi.accept import Acceptor
from tricorn.asgi.worker import shares_sockets
from tricorn.core.settings import REGISTRY


class Counting(asyncio.Protocol):
    made: list[Counting] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        Counting.made.append(self)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())  # type: ignore[attr-defined]


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_one_wake_up_takes_at_most_a_batch_and_the_rest_follows(loop_name: str) -> None:
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    listener = _listener()
    clients = [socket.create_connection(listener.getsockname()) for _ in range(10)]
    Counting.made = []
    acceptor = Acceptor(loop, listener, Counting, batch=4)

    async def scenario() -> tuple[int, int, list[bytes]]:
        acceptor._on_readable()  # one readiness event
        for _ in range(5):
            await asyncio.sleep(0)
        after_one = len(Counting.made)
        acceptor.start()
        for _ in range(200):
            if len(Counting.made) == 10:
                break
            await asyncio.sleep(0.01)
        for i, client in enumerate(clients):
            client.sendall(b"ping %d" % i)
        replies = await asyncio.gather(*(loop.sock_recv(c, 100) for c in clients))
        acceptor.close()
        return after_one, len(Counting.made), replies

    for client in clients:
        client.setblocking(False)
    try:
        after_one, total, replies = loop.run_until_complete(scenario())
    finally:
        for client in clients:
            client.close()
        for proto in Counting.made:
            proto.transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        listener.close()
    assert after_one == 4
    assert total == 10
    assert replies == [b"PING %d" % i for i in range(10)]


def test_close_stops_accepting_and_releases_the_socket() -> None:
    """As the native server: after close, this process no longer holds the listening socket, so
    (being the last holder here) new connections are refused instead of queued."""
    loop = asyncio.new_event_loop()
    listener = _listener()
    address = listener.getsockname()
    Counting.made = []
    acceptor = Acceptor(loop, listener, Counting)
    acceptor.start()
    acceptor.close()
    try:
        assert listener.fileno() == -1
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=2).close()
        loop.run_until_complete(asyncio.sleep(0.05))
        assert Counting.made == []
    finally:
        loop.close()


def test_the_worker_accepts_fairly_only_beside_siblings() -> None:
    def cfg(**values: Any) -> Any:
        return REGISTRY.make("arbiter", {"app": "x:app", **values})

    assert shares_sockets(cfg(workers=2), under_arbiter=True)
    assert not shares_sockets(cfg(workers=1), under_arbiter=True)
    assert not shares_sockets(cfg(workers=4, reuse_port=True), under_arbiter=True)
    assert not shares_sockets(cfg(workers=4), under_arbiter=False)  # tricorn-asgi alone
