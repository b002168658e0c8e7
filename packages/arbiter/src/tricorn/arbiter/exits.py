"""Exits: reaping workers, saying why each one ended, and deciding what happens next.

Invariants:
- Only pids in `workers` (and the re-exec child) are waited for; as pid 1 stray orphans are
  reaped too, without being reported as workers (an unrelated child exiting with 3 halts nothing).
- The log tells the causes apart: an exit code; a signal the master sent (`kill_reason`: timeout,
  graceful timeout, shutdown deadline); an external SIGKILL, reported as out of memory when the
  kernel's OOM-kill counter rose since the last check, else as "possibly OOM, or an operator";
  any other signal by name (SIGSEGV...).
- A worker that exits before ``ready`` is a boot failure: exit 3/4 with no ready worker halts the
  master with that code; `boot_failure_limit` failures in a row halt it with 3 (signal deaths
  during boot included: no endless boot loop). A replacement of a new generation that fails to
  boot reverts to the previous generation while its workers serve.
- A worker that dies after ready is replaced at once; when workers keep dying young (ready for
  less than `respawn_backoff_uptime`) each start waits twice as long, up to `respawn_backoff_max`.
- Every stop ends with every worker reaped: at the stop deadline the rest get SIGKILL; if the loop
  itself fails, `_emergency_stop` does the same without it.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from tricorn.core.worker import EXIT_APP_LOAD_ERROR, EXIT_BOOT_ERROR, RETIRE_SIGNAL

from . import osutil
from . import settings as s
from .process import WorkerProcess
from .state import MasterState, signal_name

__all__ = ["ExitsMixin"]


class ExitsMixin(MasterState):
    """Reaping, exit reports, the boot-failure and crash policy, and the end of a stop."""

    def _reap(self) -> None:
        for pid in list(self.workers):
            try:
                wpid, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, status = pid, 0
            if wpid:
                self._worker_exited(self.workers.pop(pid), status)
        if self.reexec_pid:
            try:
                wpid, status = os.waitpid(self.reexec_pid, os.WNOHANG)
            except ChildProcessError:
                wpid, status = self.reexec_pid, 0
            if wpid:
                self.log.info("New master (pid %d) exited: %s", wpid, self._describe(status))
                self.reexec_pid = 0
        if self.pid == 1:
            while True:
                try:
                    wpid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if not wpid:
                    break

    @staticmethod
    def _describe(status: int) -> str:
        code = os.waitstatus_to_exitcode(status)
        return f"signal {signal_name(-code)}" if code < 0 else f"exit code {code}"

    def _worker_exited(self, worker: WorkerProcess, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        worker.exit_code = code
        reading = worker.slot.read()
        self.retired_requests += reading.requests
        self.retired_duration_sum += reading.duration_sum
        if not self.retired_buckets:
            self.retired_buckets = [0] * len(reading.buckets)
        for i, count in enumerate(reading.buckets):
            self.retired_buckets[i] += count
        worker.slot.close()
        ready = worker.state != "booting" or reading.ready_at > 0
        expected = worker.state == "retiring" or self.stopping
        self._log_exit(worker, code, expected)
        worker.generation.hooks.call("child_exit", self, worker)
        if self.stopping:
            return
        now = time.monotonic()
        if worker.kill_reason == "timeout":
            self.restarts["timeout"] += 1
        if expected:
            return
        if not ready:
            self._boot_failed(worker, code, now)
            return
        if worker.kill_reason != "timeout":
            self.restarts["crash"] += 1
        self._schedule_respawn(now, uptime=now - worker.ready_at if worker.ready_at else 0.0)

    def _log_exit(self, worker: WorkerProcess, code: int, expected: bool) -> None:
        pid = worker.pid
        if code >= 0:
            level = logging.INFO if code == 0 or expected else logging.ERROR
            self.log.log(level, "Worker (pid:%d) exited with code %d", pid, code)
            return
        name = signal_name(-code)
        if worker.kill_reason is not None:
            self.log.log(logging.WARNING if worker.kill_reason == "timeout" else logging.INFO,
                         "Worker (pid:%d) was sent %s by the master (%s)", pid, name,
                         worker.kill_reason)
        elif -code == signal.SIGKILL:
            oom_kills = self._oom_kills_since_check()
            if oom_kills:
                self.log.error("Worker (pid:%d) was sent SIGKILL from outside the master: "
                               "out of memory (the kernel's OOM killer killed %d process(es) "
                               "since the last check)", pid, oom_kills)
            else:
                self.log.error("Worker (pid:%d) was sent SIGKILL from outside the master "
                               "(external; possibly OOM, or an operator)", pid)
        elif expected and -code in (RETIRE_SIGNAL, signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
            self.log.info("Worker (pid:%d) exited on %s", pid, name)
        else:
            self.log.error("Worker (pid:%d) was killed by signal %s", pid, name)

    def _oom_kills_since_check(self) -> int:
        """OOM-killer kills (system-wide) since the last check: a hint, not proof, that an
        external SIGKILL came from the kernel. Re-checked at every memory sampling."""
        count = osutil.oom_kill_count()
        if count is None:
            return 0
        previous, self._oom_kills = self._oom_kills, count
        return max(0, count - previous) if previous is not None else 0

    def _boot_failed(self, worker: WorkerProcess, code: int, now: float) -> None:
        generation = self.generation
        self.restarts["boot_failure"] += 1
        if worker.generation is not generation:
            return  # an outgoing worker that never became ready: nothing to replace
        reason = f"code {code}" if code >= 0 else f"signal {signal_name(-code)}"
        older = [w for w in self.workers.values()
                 if w.generation is not generation and w.state == "ready"]
        if older:
            previous = max((w.generation for w in older), key=lambda g: g.number)
            self.log.error("Reload failed: a worker of generation %d exited (%s) before it was "
                           "ready; reverting to generation %d", worker.generation.number,
                           reason, previous.number)
            self.generation = previous
            self.settings = previous.settings
            self.reloading = False
            self.announced_ready = True
            return
        self.boot_failures += 1
        any_ready = any(w.state == "ready" for w in self.workers.values())
        if code in (EXIT_BOOT_ERROR, EXIT_APP_LOAD_ERROR) and not any_ready:
            what = "failed to boot" if code == EXIT_BOOT_ERROR else "could not load the app"
            self.halt(code, f"Worker {what} (pid:{worker.pid}, exit {code})")
            return
        limit = generation.settings[s.BOOT_FAILURE_LIMIT] if generation else 3
        if self.boot_failures >= limit:
            self.halt(code if code in (EXIT_BOOT_ERROR, EXIT_APP_LOAD_ERROR) else EXIT_BOOT_ERROR,
                      f"{self.boot_failures} workers in a row died before becoming ready "
                      f"(last: {reason})")
            return
        self.log.error("Worker (pid:%d) died before becoming ready (%s); %d of %d allowed in a "
                       "row", worker.pid, reason, self.boot_failures, limit)
        self._schedule_respawn(now)

    def _schedule_respawn(self, now: float, uptime: float = 0.0) -> None:
        """Replace at once, unless workers keep dying young: then back off exponentially."""
        cfg = self.generation.settings if self.generation else self.settings
        backoff_max = cfg[s.RESPAWN_BACKOFF_MAX]
        young = uptime < cfg[s.RESPAWN_BACKOFF_UPTIME]
        if young and now - self.last_crash < max(2 * backoff_max, 1.0):
            self.crash_streak += 1
        else:
            self.crash_streak = 1
        self.last_crash = now
        if self.crash_streak > 1:
            delay = min(backoff_max, 0.1 * 2 ** (self.crash_streak - 2))
            self.spawn_not_before = max(self.spawn_not_before, now + delay)
            self.log.warning("Workers keep crashing (%d in a row): next start in %.1f s",
                             self.crash_streak, delay)

    def halt(self, code: int, reason: str) -> None:
        self.log.error("Shutting down: %s", reason)
        self.exit_code = code
        self.stop(graceful=True)

    def _check_stop(self, now: float) -> bool:
        """While stopping: True when done (every worker reaped)."""
        if not self.workers:
            return True
        if now >= self.stop_deadline:
            for worker in self.workers.values():
                if not worker.killed:
                    self.log.warning("Worker (pid:%d) still running at the shutdown deadline; "
                                     "SIGKILL", worker.pid)
                    worker.kill("shutdown deadline")
            self.stop_deadline = now + 5.0  # SIGKILL cannot be ignored: only reaping remains
        return False

    def _emergency_stop(self) -> None:
        for worker in self.workers.values():
            worker.signal(signal.SIGTERM)
        deadline = time.monotonic() + self._graceful_timeout()
        while self.workers and time.monotonic() < deadline:
            time.sleep(0.05)
            self._reap()
        for worker in self.workers.values():
            worker.signal(signal.SIGKILL)
        while self.workers and time.monotonic() < deadline + 5:
            time.sleep(0.05)
            self._reap()
