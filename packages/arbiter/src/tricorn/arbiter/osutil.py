"""Small operating-system helpers: process titles, parent-death signal, privileges, memory,
daemonizing.

Invariants:
- Every helper degrades to a no-op (or None) where the platform lacks the feature, and says so in
  its docstring; none raises for a missing feature.
- `daemonize` runs before any socket is bound or thread started: it forks twice and the
  intermediate processes leave with ``os._exit`` (no atexit handlers, no flushed buffers twice).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = [
    "daemonize",
    "drop_privileges",
    "oom_kill_count",
    "rss_bytes",
    "set_parent_death_signal",
    "set_proc_title",
    "tcp_migrate_req",
]

_PR_SET_PDEATHSIG = 1
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def set_proc_title(title: str) -> bool:
    """Set the process title when ``setproctitle`` is installed; False otherwise."""
    try:
        import setproctitle  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    setproctitle.setproctitle(title)
    return True


def set_parent_death_signal(signum: int) -> bool:
    """Linux: have the kernel send `signum` to this process when its parent exits
    (``prctl(PR_SET_PDEATHSIG)``). False elsewhere or on failure."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def drop_privileges(uid: int | None, gid: int | None) -> None:
    """Switch to `gid` (with the user's supplementary groups) and `uid`. Raises `OSError`
    (e.g. EPERM when not started as root)."""
    if gid is not None and gid != os.getegid():
        os.setgid(gid)
    if uid is not None and uid != os.geteuid():
        try:
            import pwd

            name = pwd.getpwuid(uid).pw_name
            os.initgroups(name, gid if gid is not None else pwd.getpwuid(uid).pw_gid)
        except (KeyError, OSError):
            try:
                os.setgroups([])
            except OSError:
                pass
        os.setuid(uid)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of `pid` (Linux ``/proc/PID/statm``); None if unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            fields = f.read().split()
        return int(fields[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has killed since boot (``oom_kill`` in
    ``/proc/vmstat``, Linux >= 4.13; system-wide, cgroup OOM kills included); None where absent."""
    try:
        with open("/proc/vmstat", "rb") as f:
            for line in f:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def tcp_migrate_req() -> bool | None:
    """Whether Linux migrates connections queued on a closing ``SO_REUSEPORT`` listener to another
    socket of its group (sysctl ``net.ipv4.tcp_migrate_req``, Linux >= 5.14); None if unknown."""
    try:
        with open("/proc/sys/net/ipv4/tcp_migrate_req", "rb") as f:
            return f.read().strip() != b"0"
    except (OSError, ValueError):
        return None


def daemonize() -> None:
    """Detach: fork, setsid, fork again; stdin/stdout/stderr to /dev/null; umask untouched."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
