"""The heartbeat: one page of memory shared by the master and one worker.

Gunicorn's idea (an unlinked temp file per worker, created by the master before the fork, whose
timestamp the worker refreshes and the master reads), taken one step further: the file is
``mmap``-ed ``MAP_SHARED`` by both processes, so the worker's `notify` is a store into memory, not
a syscall, and the same page carries the readiness time and the request counters the master needs
for ``--max-requests`` and ``/metrics``.

- The master calls `HeartbeatSlot.create` before forking a worker: a temp file in ``worker_tmp_dir``
  (``/dev/shm`` by default, so it is memory, never disk), unlinked at once, truncated to one page and
  mapped; the file descriptor is closed right after mapping. Nothing is left on disk, even after a
  SIGKILL.
- The child wraps its inherited mapping in `WorkerHeartbeat` (the `tricorn.core.worker.Heartbeat`
  protocol) and writes; the master reads `SlotReading` snapshots with `HeartbeatSlot.read`.
- Events that should wake the master at once (ready, request limit reached) are also written as one
  8-byte record ``(pid, event)`` to the master's wake pipe (atomic, below ``PIPE_BUF``; dropped if
  the pipe is full, since the master also polls the page every loop pass).

Invariants:
- Each field has exactly one writer: the master writes `request_limit` before the fork and never
  again; the worker writes every other field. Fields are 8 bytes wide and 8-byte aligned, so a
  reader never sees a torn value on the platforms tricorn runs on.
- Times are ``time.monotonic()`` values (CLOCK_MONOTONIC, one clock for every process on the host).
- `notify`, `request_started` and `request_finished` never block and never raise; a worker with
  threads serializes the counter updates with a lock (uncontended: tens of nanoseconds).
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DURATION_BUCKETS",
    "EVENT_LIMIT",
    "EVENT_READY",
    "EVENT_RECORD",
    "HeartbeatSlot",
    "SlotReading",
    "WorkerHeartbeat",
    "default_tmp_dir",
]

DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the request-duration histogram; one more bucket holds the rest."""

EVENT_READY: Final = 1
EVENT_LIMIT: Final = 2
EVENT_RECORD: Final = struct.Struct("=II")
"""A wake-pipe record: the worker's pid and the event."""

_PAGE = mmap.PAGESIZE
_MAGIC = 0x4E435254  # "TRCN"
_VERSION = 1
_HEAD = struct.Struct("=II")
_F64 = struct.Struct("=d")
_U64 = struct.Struct("=Q")
_OFF_NOTIFY = 8
_OFF_READY = 16
_OFF_LIMIT = 24
_OFF_REQUESTS = 32
_OFF_IN_FLIGHT = 40
_OFF_DURATION_SUM = 48
_OFF_BUCKETS = 56
_NBUCKETS = len(DURATION_BUCKETS) + 1
_ALL = struct.Struct(f"=IIddQQqd{_NBUCKETS}Q")
# The worker's counters as indexes into the page's 8-byte integers (`HeartbeatSlot.integers`).
_W_REQUESTS = _OFF_REQUESTS // 8
_W_IN_FLIGHT = _OFF_IN_FLIGHT // 8
_W_BUCKETS = _OFF_BUCKETS // 8


def default_tmp_dir() -> str | None:
    """``/dev/shm`` when it is a writable directory (memory, like Gunicorn's FAQ advises), else
    None (the system temp dir)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


@dataclass(frozen=True, slots=True)
class SlotReading:
    """One snapshot of a worker's page."""

    last_notify: float
    ready_at: float
    """0.0 while the worker is booting."""
    request_limit: int
    requests: int
    in_flight: int
    duration_sum: float
    buckets: tuple[int, ...]
    """Per-bucket counts (not cumulative); the last one is above the largest bound."""


class HeartbeatSlot:
    """A worker's shared page. Create in the master before the fork; both processes keep the
    mapping (closing it in one does not affect the other)."""

    __slots__ = ("_mm", "_views")

    def __init__(self, mm: mmap.mmap) -> None:
        self._mm = mm
        self._views: tuple[memoryview, memoryview[int]] | None = None

    @classmethod
    def create(cls, tmp_dir: str | None = None, *, request_limit: int = 0) -> HeartbeatSlot:
        """A fresh page in `tmp_dir` (None: the system temp dir). Raises `OSError`."""
        fd, path = tempfile.mkstemp(prefix="tricorn-hb-", dir=tmp_dir)
        try:
            os.unlink(path)
            os.ftruncate(fd, _PAGE)
            mm = mmap.mmap(fd, _PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        _HEAD.pack_into(mm, 0, _MAGIC, _VERSION)
        _F64.pack_into(mm, _OFF_NOTIFY, time.monotonic())
        _U64.pack_into(mm, _OFF_LIMIT, max(0, request_limit))
        return cls(mm)

    @property
    def closed(self) -> bool:
        return self._mm.closed

    def close(self) -> None:
        views, self._views = self._views, None
        for view in reversed(views or ()):
            view.release()  # a later write through them raises ValueError, which writers ignore
        if not self._mm.closed:
            self._mm.close()

    def integers(self) -> memoryview[int]:
        """The page as signed 8-byte integers, indexed by byte offset // 8: the worker updates its
        counters through it (an item store, no struct packing)."""
        if self._views is None:
            whole = memoryview(self._mm)
            self._views = (whole, whole.cast("q"))
        return self._views[1]

    def read(self) -> SlotReading:
        values = _ALL.unpack_from(self._mm, 0)
        return SlotReading(
            last_notify=values[2],
            ready_at=values[3],
            request_limit=values[4],
            requests=values[5],
            in_flight=values[6],
            duration_sum=values[7],
            buckets=tuple(values[8:]),
        )

    def last_notify(self) -> float:
        value: float = _F64.unpack_from(self._mm, _OFF_NOTIFY)[0]
        return value


class WorkerHeartbeat:
    """The worker's side of a `HeartbeatSlot` (implements `tricorn.core.worker.Heartbeat`).

    `on_ready` runs once in `ready` before the master is told (the arbiter runs the
    ``post_worker_init`` hook there)."""

    __slots__ = ("_slot", "_mm", "_ints", "_duration_sum", "_wake_fd", "_pid", "_lock", "_limit",
                 "_is_ready", "_on_ready")

    def __init__(
        self,
        slot: HeartbeatSlot,
        wake_fd: int = -1,
        *,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self._slot = slot
        self._mm = slot._mm
        self._ints = slot.integers()
        self._wake_fd = wake_fd
        self._pid = os.getpid()
        self._lock = threading.Lock()
        reading = slot.read()
        self._limit = reading.request_limit
        self._duration_sum = reading.duration_sum
        self._is_ready = reading.ready_at > 0
        self._on_ready = on_ready

    def _wake(self, event: int) -> None:
        if self._wake_fd < 0:
            return
        try:
            os.write(self._wake_fd, EVENT_RECORD.pack(self._pid, event))
        except OSError:
            pass  # full or closed: the master polls the page anyway

    def notify(self) -> None:
        try:
            _F64.pack_into(self._mm, _OFF_NOTIFY, time.monotonic())
        except (ValueError, TypeError):
            pass  # mapping closed (process exiting)

    def ready(self) -> None:
        if self._is_ready:
            return
        self._is_ready = True
        if self._on_ready is not None:
            self._on_ready()
        now = time.monotonic()
        try:
            _F64.pack_into(self._mm, _OFF_NOTIFY, now)
            _F64.pack_into(self._mm, _OFF_READY, now)
        except (ValueError, TypeError):
            return
        self._wake(EVENT_READY)

    def request_started(self) -> None:
        ints = self._ints
        try:
            with self._lock:
                ints[_W_IN_FLIGHT] += 1
        except ValueError:
            pass

    def request_finished(self, duration: float) -> None:
        index = _W_BUCKETS + bisect_left(DURATION_BUCKETS, duration)  # first bound >= duration
        ints = self._ints
        try:
            with self._lock:
                if ints[_W_IN_FLIGHT] > 0:
                    ints[_W_IN_FLIGHT] -= 1
                requests = ints[_W_REQUESTS] = ints[_W_REQUESTS] + 1
                if duration > 0.0:
                    self._duration_sum += duration
                    _F64.pack_into(self._mm, _OFF_DURATION_SUM, self._duration_sum)
                ints[index] += 1
        except (ValueError, TypeError):
            return
        if requests == self._limit:
            self._wake(EVENT_LIMIT)
