"""Sample CPU and memory of the server's processes and of the load generator while load runs.

A `Sampler` thread wakes every `interval_s` and, for every watched process tree, records one row per
live process: time, group ("server" or "loadgen"), role ("master"/"main"/"worker" for the server,
"locust-master"/"locust-worker"/"wrk" for the generator), pid, CPU % over the last interval (100 = one
core), RSS and PSS in bytes. Processes that appear later (a respawned worker) are picked up on the next
tick; processes that vanish simply stop appearing. The thread stops within one interval of `stop()`.
"""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab import procfs

COLUMNS = ("time", "group", "role", "pid", "cpu_percent", "rss_bytes", "pss_bytes")


@dataclass(frozen=True)
class Sample:
    """One process at one instant."""

    time: float
    group: str
    role: str
    pid: int
    cpu_percent: float
    rss_bytes: int
    pss_bytes: int | None


@dataclass(frozen=True)
class Watch:
    """A process to sample; with `tree`, its descendants too (roles: `role` for the root when it has
    no children, else `root_role_with_children`, and `child_role` for descendants)."""

    group: str
    pid: int
    role: str
    tree: bool = False
    root_role_with_children: str = "master"
    child_role: str = "worker"


class Sampler:
    """Background sampling of watched processes; `samples` holds the rows."""

    def __init__(self, interval_s: float = 0.5, with_pss: bool = True) -> None:
        self.interval_s = interval_s
        self.with_pss = with_pss
        self.samples: list[Sample] = []
        self._watches: list[Watch] = []
        self._previous: dict[int, tuple[float, float]] = {}  # pid → (monotonic, cpu seconds)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, watch: Watch) -> None:
        """Add a process (tree) to sample from the next tick on."""
        with self._lock:
            self._watches.append(watch)

    def _targets(self) -> list[tuple[Watch, int, str]]:
        with self._lock:
            watches = list(self._watches)
        targets: list[tuple[Watch, int, str]] = []
        parents = procfs.all_parents() if any(w.tree for w in watches) else {}
        for watch in watches:
            if watch.tree:
                below = procfs.descendants(watch.pid, parents)
                targets.append((watch, watch.pid, watch.root_role_with_children if below else watch.role))
                targets.extend((watch, pid, watch.child_role) for pid in sorted(below))
            else:
                targets.append((watch, watch.pid, watch.role))
        return targets

    def tick(self) -> None:
        """Take one sample of every watched process now."""
        now_wall = time.time()
        now = time.monotonic()
        for watch, pid, role in self._targets():
            stat = procfs.read_stat(pid)
            if stat is None or not procfs.alive(pid):
                continue
            previous = self._previous.get(pid)
            self._previous[pid] = (now, stat.cpu_seconds)
            if previous is None:
                continue  # CPU % needs two readings; the first only primes
            elapsed = now - previous[0]
            cpu = 100.0 * (stat.cpu_seconds - previous[1]) / elapsed if elapsed > 0 else 0.0
            pss = procfs.read_pss(pid) if self.with_pss else None
            self.samples.append(Sample(now_wall, watch.group, role, pid, round(cpu, 2), stat.rss_bytes, pss))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lab-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s * 4 + 1)
            self._thread = None


def write_csv(samples: list[Sample], path: Path) -> None:
    """Write samples with the `COLUMNS` header (PSS empty when unknown)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for s in samples:
            writer.writerow(
                (
                    f"{s.time:.3f}",
                    s.group,
                    s.role,
                    s.pid,
                    f"{s.cpu_percent:.2f}",
                    s.rss_bytes,
                    "" if s.pss_bytes is None else s.pss_bytes,
                )
            )


def read_csv(path: Path) -> list[Sample]:
    """Samples written by `write_csv`."""
    with open(path, newline="") as handle:
        return [
            Sample(
                float(row["time"]),
                row["group"],
                row["role"],
                int(row["pid"]),
                float(row["cpu_percent"]),
                int(row["rss_bytes"]),
                int(row["pss_bytes"]) if row["pss_bytes"] else None,
            )
            for row in csv.DictReader(handle)
        ]
