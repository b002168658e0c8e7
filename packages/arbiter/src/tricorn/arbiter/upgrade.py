"""Binary upgrade (SIGUSR2): a new master from the same command line, inheriting the sockets.

The old master forks; the child runs the ``pre_exec`` hook and ``execve``s ``sys.executable`` with
``sys.orig_argv``, passing the listening descriptors in ``TRICORN_FD`` and its pid in
``TRICORN_PID`` (`tricorn.arbiter.listeners`). The new master writes ``PIDFILE.2``; when its
parent (the old master) is gone it is *promoted*: the pid file gets its plain name back.

Invariants:
- One upgrade at a time: USR2 is ignored while a new master runs, while this master is not yet
  promoted itself, and while it is stopping (its sockets are being closed).
- The forked child never returns into the master's code: ``execve`` or ``os._exit(1)``.
- The listening sockets are handed over, never closed and bound again: no connection is refused
  during the upgrade.
"""

from __future__ import annotations

import os
import sys

from tricorn.core.settings import APP

from . import osutil
from . import settings as s
from .listeners import FD_ENV, PID_ENV
from .pidfile import PidfileError
from .state import EXIT_ERROR, MasterState

__all__ = ["ReexecMixin"]


class ReexecMixin(MasterState):
    """SIGUSR2: re-exec a new master with the sockets; promotion when the old one exits."""

    def reexec(self) -> None:
        """SIGUSR2: start a new master from the same command line, passing it the sockets."""
        if self.stopping:
            self.log.warning("USR2 ignored: the master is stopping")
            return
        if self.reexec_pid:
            self.log.warning("USR2 ignored: a new master (pid %d) is already running",
                             self.reexec_pid)
            return
        if self.old_master_pid:
            self.log.warning("USR2 ignored: this master is not promoted yet (old master %d)",
                             self.old_master_pid)
            return
        fds = [listener.fileno() for listener in self._listeners]
        waker = self._waker
        if waker is not None:
            waker.block()
        try:
            pid = os.fork()
        except OSError as exc:
            self.log.error("USR2: fork failed: %s", exc)
            pid = -1
        if pid != 0:
            if waker is not None:
                waker.unblock()
            if pid > 0:
                self.reexec_pid = pid
                self.log.info("Started new master (pid %d) for the binary upgrade", pid)
            return
        try:
            if waker is not None:
                waker.reset_in_child()
            self.hooks.call("pre_exec", self)
            env = dict(os.environ)
            env[FD_ENV] = ",".join(str(fd) for fd in fds)
            env[PID_ENV] = str(self.pid)
            for fd in fds:
                os.set_inheritable(fd, True)
            os.chdir(self._start_cwd)
            argv = [sys.executable, *sys.orig_argv[1:]]
            os.execve(sys.executable, argv, env)
        except BaseException:
            self.log.exception("re-exec failed")
        finally:
            os._exit(EXIT_ERROR)

    def _check_promotion(self) -> None:
        if self.old_master_pid and os.getppid() != self.old_master_pid:
            self.log.info("Master has been promoted (the old master %d exited)",
                          self.old_master_pid)
            self.old_master_pid = None
            pidfile = self.settings[s.PIDFILE]
            if self._pidfile is not None and pidfile:
                try:
                    self._pidfile.rename(pidfile)
                except PidfileError as exc:
                    self.log.error("%s", exc)
            self._set_title()

    def _set_title(self) -> None:
        name = self.settings[s.NAME] or (self.settings[APP] or "")
        suffix = ".2" if self.old_master_pid else ""
        osutil.set_proc_title(f"tricorn: master [{name}]{suffix}")
