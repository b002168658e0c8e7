"""``--reload`` (development): a worker exits when a source file of a loaded module changes.

A daemon thread in each worker polls the modification times of the files behind
``sys.modules`` every ``reload_interval`` seconds; on a change it logs the file and sends the
worker SIGTERM, so the worker stops gracefully and the master starts a fresh one (which imports
the new code). The master itself runs no watcher: it starts no threads.

Invariants:
- Files are compared by ``st_mtime_ns``; a file that disappears counts as a change.
- Modules that appear later (imported lazily) are picked up on the next poll, with their current
  time as the baseline.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

__all__ = ["start_reloader"]


def _module_files() -> set[str]:
    files: set[str] = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith((".py", ".pyc", ".so", ".pyd")):
            files.add(path)
    return files


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def start_reloader(interval: float, log: logging.Logger) -> threading.Thread:
    def watch() -> None:
        seen: dict[str, int | None] = {}
        while True:
            for path in _module_files():
                now = _mtime(path)
                if path not in seen:
                    seen[path] = now
                elif seen[path] != now:
                    log.info("worker %d: %s changed; restarting", os.getpid(), path)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
            time.sleep(interval)

    thread = threading.Thread(target=watch, name="tricorn-reloader", daemon=True)
    thread.start()
    return thread
