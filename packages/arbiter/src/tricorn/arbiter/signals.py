"""Signals in the master: the handlers record and wake; the loop does the work.

`SignalWaker` installs one no-op Python handler per signal and points
``signal.set_wakeup_fd`` at the write end of a non-blocking socket pair. Python's C-level handler
writes the signal number into it before anything else runs, so the master's ``select`` wakes at
once and `drain` returns the signals in the order they arrived. No logging, no allocation, no
locks in a handler (Gunicorn moved to the same discipline in 24.0).

Invariants:
- Only the main thread installs or resets (``set_wakeup_fd`` requires it); the master starts no
  threads anyway.
- The master forks with its signals blocked; `reset_in_child` undoes everything in the child
  (default dispositions, no wakeup fd, both socket ends closed) and only then unblocks. A worker
  never runs the master's handlers, even for a signal sent a microsecond after the fork.
- A full socket buffer drops bytes silently (``warn_on_full_buffer=False``); the loop also polls
  for children every pass, so a lost SIGCHLD byte delays a reap by one tick at most.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterable
from types import FrameType

__all__ = ["MASTER_SIGNALS", "SignalWaker"]

MASTER_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCHLD,
)


def _record(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing to do, the C handler already wrote the byte."""


class SignalWaker:
    """The wakeup socket pair and the master's signal dispositions."""

    def __init__(self, signals: Iterable[signal.Signals] = MASTER_SIGNALS) -> None:
        self.signals = tuple(signals)
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = -1

    def fileno(self) -> int:
        return self._reader.fileno()

    def install(self) -> None:
        for sig in self.signals:
            signal.signal(sig, _record)
            signal.siginterrupt(sig, False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)

    def drain(self) -> list[int]:
        """The signal numbers received since the last call, oldest first."""
        received: list[int] = []
        while True:
            try:
                data = self._reader.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            received.extend(data)
        return received

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

    def block(self) -> None:
        """Block the master's signals (around ``fork``, see `reset_in_child`)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)

    def unblock(self) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)

    def reset_in_child(self) -> None:
        """In a forked child: default handlers, no wakeup fd, sockets closed, then the signals
        unblocked. The master forks with its signals blocked (`block`), so a signal sent to the
        new child before this point stays pending instead of running the master's handler and
        writing into the master's wakeup socket; it is delivered here, with default action."""
        signal.set_wakeup_fd(-1)
        for sig in self.signals:
            signal.signal(sig, signal.SIG_DFL)
        self.close()
        self.unblock()

    def uninstall(self) -> None:
        """Back to default dispositions (the master, on its way out)."""
        signal.set_wakeup_fd(-1)
        for sig in self.signals:
            signal.signal(sig, signal.SIG_DFL)
