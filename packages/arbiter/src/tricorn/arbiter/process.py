"""The master's records: one `WorkerProcess` per forked worker, one `Generation` per configuration.

A *generation* is what a worker is started from: settings, worker class, app (spec or preloaded
object), hooks and listeners. A reload (SIGHUP) makes a new generation; workers of older ones are
*outgoing* and are retired as replacements become ready. A failed reload reverts to the previous
generation.

Worker states: ``booting`` (forked, not yet ready) → ``ready`` → ``retiring`` (sent the retire
signal, SIGTERM or SIGQUIT by the master). Independently, `recycle` names why a ready worker
should be replaced (max_requests, memory, lifetime); it keeps serving until its replacement is
ready.

Invariants:
- A record exists exactly while its pid is a child this master has not reaped; only pids in the
  table are ever reported as worker exits (an unrelated child exiting with 3 halts nothing).
- `kill_reason` is set before the master itself sends SIGABRT/SIGKILL, so an exit by signal can be
  told apart from an external kill (OOM killer, operator).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from typing import Literal

from tricorn.core.heartbeat import HeartbeatSlot
from tricorn.core.settings import Settings
from tricorn.core.sockets import Listener
from tricorn.core.worker import Hooks, Worker

__all__ = ["Generation", "WorkerProcess", "WorkerState"]

WorkerState = Literal["booting", "ready", "retiring"]


@dataclass(eq=False)
class Generation:
    number: int
    settings: Settings
    worker_class: type[Worker]
    worker_class_name: str
    app_spec: str
    app: object | None
    hooks: Hooks
    listeners: tuple[Listener, ...]


@dataclass(eq=False)
class WorkerProcess:
    """A worker as the master sees it (and the ``worker`` argument of master-side hooks)."""

    age: int
    generation: Generation
    slot: HeartbeatSlot
    log: logging.Logger
    pid: int = 0
    spawned_at: float = 0.0
    ready_at: float = 0.0
    state: WorkerState = "booting"
    recycle: str | None = None
    retire_reason: str | None = None
    retire_deadline: float = 0.0
    aborted_at: float = 0.0
    kill_reason: str | None = None
    killed: bool = False
    request_limit: int = 0
    lifetime_deadline: float = 0.0
    rss: int | None = None
    exit_code: int | None = field(default=None)

    @property
    def alive(self) -> bool:
        return self.state != "retiring"

    @property
    def cfg(self) -> Settings:
        return self.generation.settings

    def signal(self, signum: int) -> bool:
        """Send `signum`; False if the process is already gone."""
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def kill(self, reason: str) -> None:
        if self.killed:
            return
        self.kill_reason = self.kill_reason or reason
        self.killed = True
        self.signal(signal.SIGKILL)
