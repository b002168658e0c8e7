"""``--control-socket``: the master's control channel for ``tricornctl`` (JSON over a Unix socket).

Protocol: the client sends one JSON object on one line, ``{"command": NAME, ...arguments}``; the
master answers one JSON object on one line, ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``,
and closes. Commands:

- ``workers``: every worker (pid, age, generation, state, ready, requests, in-flight, RSS);
- ``stats``: counts, restarts by cause, requests, the generation;
- ``config``: every setting with its value and source;
- ``add`` / ``remove`` (``"count"``, default 1): change the number of workers (TTIN/TTOU);
- ``reload``: as SIGHUP (a readiness-gated rolling reload);
- ``reopen``: as SIGUSR1;
- ``shutdown`` (``"mode"``: ``graceful`` or ``quick``): as SIGTERM / SIGQUIT.

Invariants: the socket file is created with mode 0600 (the umask is tightened around ``bind``, so
it is never briefly accessible to others), owned by the master's user; a live socket at the path
is never replaced; the file is removed when the master exits. Requests are handled in the master's
loop like the status listener (`tricorn.arbiter.service.LoopServer`).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import time
from typing import TYPE_CHECKING, Any

from tricorn.core.settings import BindAddress
from tricorn.core.sockets import Listener, listen

from .service import LoopServer

if TYPE_CHECKING:
    from .arbiter import Arbiter

__all__ = ["ControlServer"]


def _jsonable(value: object) -> object:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


class ControlServer(LoopServer):
    def __init__(self, arbiter: Arbiter, path: str, selector: selectors.BaseSelector) -> None:
        self.arbiter = arbiter
        old = os.umask(0o177)
        try:
            self.listener: Listener = listen(BindAddress("unix", path=path), backlog=16)
        finally:
            os.umask(old)  # 0o777 & ~0o177 = 0600 from the start (no chmod: it would change the
            # file's ctime, which Listener.close checks before unlinking)
        super().__init__(self.listener.sock, selector, arbiter.log)
        arbiter.log.info("Control socket at: %s", path)

    def complete(self, data: bytes) -> bool:
        return b"\n" in data

    def error_response(self, message: str) -> bytes:
        return json.dumps({"ok": False, "error": message}).encode() + b"\n"

    def respond(self, data: bytes) -> bytes:
        try:
            request = json.loads(data.split(b"\n", 1)[0])
        except ValueError:
            return self.error_response("expected one JSON object on one line")
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return self.error_response('expected {"command": NAME, ...}')
        answer = self.handle(request["command"], request)
        return json.dumps(answer, sort_keys=True).encode() + b"\n"

    def handle(self, command: str, request: dict[str, Any]) -> dict[str, Any]:
        arbiter = self.arbiter
        if command == "workers":
            now = time.monotonic()
            workers = []
            for w in sorted(arbiter.workers.values(), key=lambda w: w.age):
                reading = w.slot.read() if not w.slot.closed else None
                workers.append({
                    "pid": w.pid, "age": w.age, "generation": w.generation.number,
                    "state": w.state, "recycle": w.recycle,
                    "uptime": round(now - w.spawned_at, 3),
                    "requests": reading.requests if reading else None,
                    "in_flight": reading.in_flight if reading else None,
                    "rss": w.rss,
                })
            return {"ok": True, "workers": workers}
        if command == "stats":
            return {
                "ok": True, "pid": arbiter.pid, "workers_wanted": arbiter.num_workers,
                "workers_ready": arbiter.ready_workers(), "workers": len(arbiter.workers),
                "generation": arbiter.generation.number if arbiter.generation else 0,
                "restarts": dict(arbiter.restarts), "stopping": arbiter.stopping,
                "requests": arbiter.retired_requests + sum(
                    w.slot.read().requests for w in arbiter.workers.values() if not w.slot.closed),
                "uptime": round(time.time() - arbiter.started_at, 3),
            }
        if command == "config":
            cfg = arbiter.settings
            return {"ok": True, "config": {name: {"value": _jsonable(cfg[name]),
                                                  "source": cfg.source(name)} for name in cfg}}
        if command in ("add", "remove"):
            count = request.get("count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                return {"ok": False, "error": "count must be a positive integer"}
            delta = count if command == "add" else -count
            floor = 1 if command == "remove" else 0
            arbiter.set_workers(max(floor, arbiter.num_workers + delta))
            return {"ok": True, "workers_wanted": arbiter.num_workers}
        if command == "reload":
            return {"ok": arbiter.reload()}
        if command == "reopen":
            arbiter.reopen_logs()
            return {"ok": True}
        if command == "shutdown":
            mode = request.get("mode", "graceful")
            if mode not in ("graceful", "quick"):
                return {"ok": False, "error": "mode must be graceful or quick"}
            arbiter.stop(graceful=mode == "graceful")
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {command!r}"}

    def close(self) -> None:
        super().close()
        self.listener.close()  # removes the socket file (it is ours: same inode)


def request(path: str, command: str, timeout: float = 10.0, **arguments: object) -> dict[str, Any]:
    """Send one command to a master's control socket and return its answer. Raises `OSError`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps({"command": command, **arguments}).encode() + b"\n")
        data = bytearray()
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(bytes(data).split(b"\n", 1)[0] or b"{}")
    return answer if isinstance(answer, dict) else {"ok": False, "error": "bad answer"}
