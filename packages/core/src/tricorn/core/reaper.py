"""Zombie reaping for a standalone server that runs as PID 1 (a container without an init).

A process that is PID 1 of its PID namespace inherits every orphan in the container: when an
application's helper forks and exits, the grandchild's parent becomes PID 1, and only PID 1 can
collect its exit status. A server that never calls ``wait`` then fills the process table with
zombies. `start_reaper` starts, only when this process is PID 1, a daemon thread that every
`interval` seconds looks at this process's children (``/proc/self/task/*/children``) and reaps
those that were already zombies at the previous look.

Invariants:
- Nothing happens unless ``os.getpid() == 1``: outside a container the server is never anyone's
  init, and reaping would only race with the application's own ``wait`` calls.
- A child is reaped only after it has stayed a zombie for at least `interval` seconds, with
  ``waitpid(pid, WNOHANG)`` on that pid alone (never ``waitpid(-1)``): an application that waits
  for its own children (``subprocess.run``, ``Popen.wait``) collects them first, since they wait
  as soon as the child exits. A child the application polls less often than `interval` may be
  collected here first; its ``Popen.returncode`` then reads 0 (how CPython handles ECHILD).
- Linux only (``/proc``); elsewhere, or when ``/proc`` is not mounted, it does nothing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["start_reaper", "zombie_children"]


def zombie_children() -> set[int]:
    """Pids of this process's children that are zombies now."""
    found: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            pids = Path(f"/proc/self/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
                found.add(int(pid))
    return found


def _reap_forever(interval: float) -> None:
    seen: set[int] = set()
    while True:
        threading.Event().wait(interval)
        now = zombie_children()
        for pid in now & seen:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        seen = now


def start_reaper(interval: float = 1.0) -> threading.Thread | None:
    """Start the reaper thread if this process is PID 1; returns it, or None."""
    if os.getpid() != 1 or not os.path.isdir("/proc/self/task"):
        return None
    thread = threading.Thread(target=_reap_forever, args=(interval,), name="tricorn-reaper",
                              daemon=True)
    thread.start()
    return thread
