"""The worker set: spawning, readiness, per-worker checks, and replacement before removal.

Each loop pass the master polls readiness (also signalled through the wake pipe), checks every
worker (`_check_workers`: heartbeat timeout → SIGABRT, then SIGKILL after `abort_timeout`;
retirement past `graceful_timeout` → SIGKILL; lifetime, request and memory limits → marked for
recycling) and brings the set to its target (`_manage`).

Invariants:
- Replacement before removal: an outgoing worker (of an older generation after SIGHUP, or one
  marked for recycling) is retired only when a replacement is ready; never more than
  `rolling_surge` replacements boot at once while there are outgoing workers. Outgoing workers
  that never became ready serve nobody and are retired at once.
- A worker is never killed mid-request for a limit: recycling retires it with `RETIRE_SIGNAL`
  (graceful); only the heartbeat timeout and deadlines past `graceful_timeout` send SIGKILL, and
  they record `kill_reason` first (see `tricorn.arbiter.process`).
- ``fork`` happens with the master's signals blocked; the child never returns into this code
  (`tricorn.arbiter.child.run_child` ends in ``os._exit``) and first closes the master's state.
- READY=1 (sd_notify) is announced once the target number of current-generation workers is
  ready and no outgoing worker is left unretired; listeners no generation uses are closed then.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import Sequence

from tricorn.core.heartbeat import HeartbeatSlot
from tricorn.core.settings import APP, GRACEFUL_TIMEOUT, REUSE_PORT
from tricorn.core.sockets import Listener
from tricorn.core.worker import EXIT_BOOT_ERROR, RETIRE_SIGNAL

from . import osutil, systemd
from . import settings as s
from .child import ChildPlan, run_child
from .listeners import close_listener
from .process import WorkerProcess
from .state import MasterState

__all__ = ["WorkerSetMixin"]


class WorkerSetMixin(MasterState):
    """Spawning, readiness, per-worker checks and the rolling replacement of the worker set."""

    def set_workers(self, count: int) -> None:
        if self.stopping:
            return
        old, self.num_workers = self.num_workers, max(0, count)
        if old != self.num_workers:
            self.log.info("Workers: %d -> %d", old, self.num_workers)
            self.hooks.call("nworkers_changed", self, self.num_workers, old)

    def _spawn(self) -> WorkerProcess | None:
        generation = self.generation
        if generation is None:
            return None
        cfg = generation.settings
        self._age += 1
        limit = cfg[s.MAX_REQUESTS]
        if limit > 0:
            limit += random.randint(0, cfg[s.MAX_REQUESTS_JITTER])
        try:
            slot = HeartbeatSlot.create(self._tmp_dir, request_limit=limit)
        except OSError as exc:
            self.log.error("cannot create a heartbeat page in %s: %s", self._tmp_dir, exc)
            self.spawn_not_before = time.monotonic() + 1.0
            return None
        worker = WorkerProcess(
            age=self._age, generation=generation, slot=slot, log=self.log, request_limit=limit
        )
        generation.hooks.call("pre_fork", self, worker)
        for handler in logging.getLogger("tricorn").handlers:
            handler.flush()
        waker = self._waker
        if waker is not None:
            waker.block()
        forked_at = time.monotonic()  # before the fork: the child may be ready before we run again
        try:
            pid = os.fork()
        except OSError as exc:
            if waker is not None:
                waker.unblock()
            slot.close()
            self.log.error("fork failed: %s", exc)
            self.spawn_not_before = time.monotonic() + 1.0
            return None
        if pid == 0:
            run_child(self._child_plan(worker))  # never returns; unblocks in the child
            os._exit(EXIT_BOOT_ERROR)
        if waker is not None:
            waker.unblock()
        worker.pid = pid
        worker.spawned_at = forked_at
        self.workers[pid] = worker
        self.log.info("Booting worker with pid: %d", pid)
        return worker

    def _child_plan(self, worker: WorkerProcess) -> ChildPlan:
        cfg = worker.generation.settings
        name = cfg[s.NAME] or (cfg[APP] or "")
        return ChildPlan(
            worker=worker,
            server=self,
            logs=self.logs,
            wake_fd=self._wake_w,
            parent_fd=self._parent_r,
            ppid=self.pid,
            close_master_state=lambda: self._close_in_child(worker),
            reuse_port=cfg[REUSE_PORT],
            backlog=cfg["backlog"],  # type: ignore[arg-type]
            uid=cfg[s.USER],
            gid=cfg[s.GROUP],
            umask=cfg[s.UMASK],
            title=f"tricorn: worker [{name}]",
            reload=cfg[s.RELOAD],
            reload_interval=cfg[s.RELOAD_INTERVAL],
            graceful_timeout=cfg[GRACEFUL_TIMEOUT],
            abort_timeout=cfg[s.ABORT_TIMEOUT],
            ssl_context=self._ssl_context,
        )

    def _close_in_child(self, worker: WorkerProcess) -> None:
        """In the forked child: drop everything that belongs to the master."""
        if self._waker is not None:
            self._waker.reset_in_child()
        for service in self._services:
            service.close_in_child()
        if self._selector is not None:
            try:
                self._selector.close()
            except OSError:
                pass
        for fd in (self._wake_r, self._parent_w):
            try:
                os.close(fd)
            except OSError:
                pass
        for other in self.workers.values():
            if other is not worker:
                other.slot.close()
        used = {id(listener) for listener in worker.generation.listeners}
        for listener in self._listeners:
            if id(listener) not in used:
                close_listener(listener, unlink=False)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _mark_ready(self, worker: WorkerProcess, now: float) -> None:
        if worker.state != "booting":
            return
        reading = worker.slot.read()
        worker.state = "ready"
        worker.ready_at = reading.ready_at or now
        cfg = worker.generation.settings
        lifetime = cfg[s.MAX_WORKER_LIFETIME]
        if lifetime > 0:
            jitter = random.uniform(0, cfg[s.MAX_WORKER_LIFETIME_JITTER])
            worker.lifetime_deadline = worker.ready_at + lifetime + jitter
        self.boot_failures = 0
        self.log.info("Worker (pid:%d) ready in %.0f ms", worker.pid,
                      (worker.ready_at - worker.spawned_at) * 1000)

    def _check_workers(self, now: float) -> None:
        """Readiness (polled), heartbeat timeouts, retirement deadlines, recycling limits."""
        cfg = self.generation.settings if self.generation else self.settings
        timeout = cfg[s.TIMEOUT]
        abort_timeout = cfg[s.ABORT_TIMEOUT]
        sample_memory = now >= self._next_memory_check
        if sample_memory:
            self._next_memory_check = now + cfg[s.MEMORY_CHECK_INTERVAL]
            self._oom_kills = osutil.oom_kill_count()
        memory_limit = cfg[s.MAX_WORKER_MEMORY]
        for worker in list(self.workers.values()):
            if worker.killed:
                continue
            if worker.state == "booting" and worker.slot.read().ready_at > 0:
                self._mark_ready(worker, now)
            if worker.aborted_at:
                if now - worker.aborted_at >= abort_timeout:
                    self.log.error("Worker (pid:%d) did not exit after SIGABRT; sending SIGKILL",
                                   worker.pid)
                    worker.kill("timeout")
                continue
            if worker.retire_deadline and now >= worker.retire_deadline:
                self.log.warning("Worker (pid:%d) still running %.1f s after retiring; SIGKILL",
                                 worker.pid, self._graceful_timeout())
                worker.kill("graceful timeout")
                continue
            if timeout > 0:
                silent = now - worker.slot.last_notify()
                if silent > timeout:
                    self.log.critical("WORKER TIMEOUT (pid:%d): no heartbeat for %.1f s; "
                                      "sending SIGABRT", worker.pid, silent)
                    worker.kill_reason = "timeout"
                    worker.aborted_at = now
                    worker.signal(signal.SIGABRT)
                    continue
            if worker.state != "ready" or worker.recycle is not None:
                continue
            if worker.lifetime_deadline and now >= worker.lifetime_deadline:
                worker.recycle = "lifetime"
                self.log.info("Worker (pid:%d) reached its lifetime; recycling", worker.pid)
            elif worker.request_limit and worker.slot.read().requests >= worker.request_limit:
                worker.recycle = "max_requests"
                self.log.info("Worker (pid:%d) served %d requests; recycling", worker.pid,
                              worker.request_limit)
            if sample_memory:
                worker.rss = osutil.rss_bytes(worker.pid)
                if memory_limit and worker.rss is not None and worker.rss > memory_limit:
                    worker.recycle = "memory"
                    self.log.warning("Worker (pid:%d) uses %d MiB (limit %d MiB); recycling",
                                     worker.pid, worker.rss >> 20, memory_limit >> 20)

    def _retire(self, worker: WorkerProcess, reason: str) -> None:
        if worker.state == "retiring":
            return
        worker.state = "retiring"
        worker.retire_reason = reason
        worker.retire_deadline = time.monotonic() + self._graceful_timeout()
        self.log.info("Stopping worker (pid:%d): %s", worker.pid, reason)
        worker.signal(RETIRE_SIGNAL)

    def _manage(self, now: float) -> None:
        """Bring the worker set to its target: spawn, then retire what is outgoing or surplus."""
        generation = self.generation
        if generation is None:
            return
        target = self.num_workers
        active = [w for w in self.workers.values() if w.state != "retiring" and not w.killed]
        keep = [w for w in active if w.generation is generation and w.recycle is None]
        outgoing = [w for w in active if w.generation is not generation or w.recycle is not None]
        surge = generation.settings[s.ROLLING_SURGE]

        missing = target - len(keep)
        if missing > 0 and now >= self.spawn_not_before:
            booting = sum(1 for w in keep if w.state == "booting")
            allowed = missing if not outgoing else max(0, surge - booting)
            for _ in range(min(missing, allowed)):
                worker = self._spawn()
                if worker is None:
                    break
                keep.append(worker)

        # Outgoing workers that never became ready serve nobody: retire them now.
        for worker in [w for w in outgoing if w.state == "booting"]:
            self._retire(worker, "outgoing before ready")
            outgoing.remove(worker)
        ready_keep = sum(1 for w in keep if w.state == "ready")
        excess = ready_keep + len(outgoing) - target
        outgoing.sort(key=lambda w: (w.generation.number, w.age))
        retiring = outgoing[: max(0, excess)]
        for worker in retiring:
            reason = worker.recycle or f"replaced by generation {generation.number}"
            self.restarts[worker.recycle or "reload"] += 1
            self._retire(worker, reason)
        if len(keep) > target:
            surplus = sorted(keep, key=lambda w: (w.state == "ready", -w.age))
            for worker in surplus[: len(keep) - target]:
                self._retire(worker, "fewer workers wanted")

        ready_now = sum(1 for w in keep if w.state == "ready")
        if not self.announced_ready and ready_now >= target and len(outgoing) == len(retiring):
            self.announced_ready = True
            if self.reloading:
                self.reloading = False
                self.log.info("Reload complete: generation %d serving", generation.number)
            systemd.notify(f"READY=1\nSTATUS={ready_now} workers ready")
            self._close_unused_listeners()

    def _close_unused_listeners(self, extra: Sequence[Listener] = ()) -> None:
        used: set[int] = set()
        generations = [w.generation for w in self.workers.values()]
        if self.generation is not None:
            generations.append(self.generation)
        for generation in generations:
            used.update(id(listener) for listener in generation.listeners)
        for listener in [*self._listeners, *extra]:
            if id(listener) not in used:
                if listener in self._listeners:
                    self._listeners.remove(listener)
                self.log.info("Closing listener %s", listener.url())
                close_listener(listener, unlink=True)

    def ready_workers(self) -> int:
        return sum(1 for w in self.workers.values()
                   if w.state == "ready" and w.generation is self.generation)

    def is_ready(self) -> bool:
        return not self.stopping and self.num_workers > 0 and self.ready_workers() >= self.num_workers
