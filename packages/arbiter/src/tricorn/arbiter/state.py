"""The master's state: every field the parts of the master share, and the accessors they all use.

The master (`tricorn.arbiter.arbiter.Arbiter`) is one object assembled from mixins over
`MasterState`, one job each:

- `tricorn.arbiter.workerset` (`WorkerSetMixin`): spawning workers, readiness, per-worker checks
  (heartbeat timeout, retirement deadline, recycling limits) and bringing the worker set to its
  target, readiness-gated (`_manage`).
- `tricorn.arbiter.exits` (`ExitsMixin`): reaping, what an exit means (log, metrics, boot failure,
  crash back-off, halting the master), and the end of a stop.
- `tricorn.arbiter.generations` (`GenerationsMixin`): a generation from settings (worker class,
  preloaded app, hooks, listeners) and the reload (SIGHUP) that starts a new one.
- `tricorn.arbiter.upgrade` (`ReexecMixin`): SIGUSR2 re-exec and promotion.
- `tricorn.arbiter.arbiter` (`Arbiter`): start, the main loop, signal dispatch, stop, cleanup.

Invariants:
- Only the master's main loop changes this state (signal handlers only record and wake); the
  forked child reads it once, then drops what belongs to the master (`_close_in_child`).
- `workers` holds exactly the unreaped pids this master forked as workers: nothing else (hook
  subprocesses, the re-exec child in `reexec_pid`) is ever treated as a worker.
- `generation` is what new workers start from and `settings` its settings; before the first
  generation exists (during start) `settings` is the start-up configuration. `_abort_timeout` and
  `_graceful_timeout` always read the current generation's.
- `restarts` and the `retired_*` counters only grow: the totals of exited workers, for metrics.
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tricorn.core.logs import Logs
from tricorn.core.settings import GRACEFUL_TIMEOUT, REGISTRY, Settings
from tricorn.core.sockets import Listener
from tricorn.core.worker import Hooks

from . import osutil
from . import settings as s
from .pidfile import Pidfile
from .process import Generation, WorkerProcess
from .signals import SignalWaker

__all__ = ["EXIT_ERROR", "ArbiterError", "MasterState", "signal_name"]

EXIT_ERROR = 1
"""The master could not start (sockets, pid file, worker class, settings)."""

_SIGNAMES = {int(sig): sig.name for sig in signal.Signals}


class ArbiterError(Exception):
    """The master cannot start; `exit_code` is what the command exits with."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def signal_name(signum: int) -> str:
    return _SIGNAMES.get(signum, f"signal {signum}")


class MasterState:
    """Every field of the master, and the accessors its parts share."""

    def __init__(
        self,
        settings: Settings,
        logs: Logs,
        *,
        argv: Sequence[str] | None = None,
        load_settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.logs = logs
        self.log = logs.error
        self.argv = list(argv) if argv is not None else None
        self._load_settings = load_settings or self._default_loader
        self.pid = os.getpid()
        self.workers: dict[int, WorkerProcess] = {}
        self.generation: Generation | None = None
        self.num_workers = settings[s.WORKERS]
        self.exit_code = 0
        self.started_at = time.time()
        self.stopping = False
        self.stop_graceful = True
        self.stop_deadline = 0.0
        self.spawn_not_before = 0.0
        self.boot_failures = 0
        self.crash_streak = 0
        self.last_crash = -1e9
        self.restarts: Counter[str] = Counter()
        self.retired_requests = 0
        self.retired_duration_sum = 0.0
        self.retired_buckets: list[int] = []
        self.reexec_pid = 0
        self.old_master_pid: int | None = None
        self.systemd_sockets = False
        self._systemd_listeners: list[Listener] = []
        self.announced_ready = False
        self.reloading = False
        self._age = 0
        self._listeners: list[Listener] = []
        self._selector: selectors.BaseSelector | None = None
        self._waker: SignalWaker | None = None
        self._wake_r = self._wake_w = -1
        self._parent_r = self._parent_w = -1
        self._pidfile: Pidfile | None = None
        self._tmp_dir: str | None = None
        self._next_memory_check = 0.0
        self._oom_kills = osutil.oom_kill_count()
        self._preload_modules: set[str] = set()
        self._services: list[Any] = []
        self._start_cwd = os.getcwd()
        self._ssl_context: object | None = None

    @property
    def cfg(self) -> Settings:
        return self.settings

    @property
    def WORKERS(self) -> dict[int, WorkerProcess]:  # noqa: N802 - Gunicorn's spelling for hooks
        return self.workers

    @property
    def LISTENERS(self) -> list[Listener]:  # noqa: N802
        return self._listeners

    @property
    def hooks(self) -> Hooks:
        if self.generation is not None:
            return self.generation.hooks
        return Hooks.from_settings(self.settings, self.log)

    def _default_loader(self) -> Settings:
        return REGISTRY.load("arbiter", self.argv)

    def _abort_timeout(self) -> float:
        cfg = self.generation.settings if self.generation else self.settings
        return cfg[s.ABORT_TIMEOUT]

    def _graceful_timeout(self) -> float:
        cfg = self.generation.settings if self.generation else self.settings
        return cfg[GRACEFUL_TIMEOUT]

    def stop(self, graceful: bool = True) -> None:
        """Stop the master (graceful: TERM, else QUIT to the workers); `Arbiter` implements it."""
        raise NotImplementedError
