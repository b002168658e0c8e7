"""The master's pid file.

Invariants:
- The file is written atomically (a temp file in the same directory, then ``rename``), so a reader
  never sees a partial pid.
- `Pidfile.remove` deletes the file only if it still holds this process's pid: a successor
  master's file (after SIGUSR2) is never removed by the old master.
- A pid file naming a live process other than this one is refused at creation (two masters would
  fight over it); a stale one is replaced.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["Pidfile", "PidfileError", "read_pid"]


class PidfileError(Exception):
    """The pid file could not be written; `str(exc)` says why."""


def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Pidfile:
    """``Pidfile(path).create(pid)``; `rename` moves it (promotion after SIGUSR2)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.pid: int | None = None

    def create(self, pid: int) -> None:
        old = read_pid(self.path)
        if old is not None and old != pid and old != os.getppid() and _alive(old):
            raise PidfileError(f"pid file {self.path} names a running process ({old})")
        self._write(self.path, pid)
        self.pid = pid

    @staticmethod
    def _write(path: str, pid: int) -> None:
        directory = os.path.dirname(path) or "."
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tricorn-pid-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(f"{pid}\n")
                os.chmod(tmp, 0o644)
                os.rename(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            raise PidfileError(f"cannot write pid file {path}: {exc.strerror or exc}") from exc

    def rename(self, path: str) -> None:
        """Write our pid to `path` and remove the old file (if it is still ours)."""
        if self.pid is None:
            return
        new_path = os.path.abspath(path)
        self._write(new_path, self.pid)
        self.remove()
        self.path = new_path

    def remove(self) -> None:
        if self.pid is not None and read_pid(self.path) == self.pid:
            try:
                os.unlink(self.path)
            except OSError:
                pass
