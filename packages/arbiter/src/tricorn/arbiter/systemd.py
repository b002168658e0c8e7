"""systemd integration: socket activation (``LISTEN_FDS``) and ``sd_notify``.

Invariants:
- `listen_fds` returns the passed descriptors only when ``LISTEN_PID`` is this process (the
  protocol's guard against inheriting another process's variables), and removes the variables
  from the environment so no child mistakes them for its own.
- `notify` never raises and never blocks: without ``$NOTIFY_SOCKET`` it does nothing; a send
  error is returned as False.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

__all__ = ["SD_LISTEN_FDS_START", "listen_fds", "notify"]

SD_LISTEN_FDS_START = 3


def listen_fds(environ: MutableMapping[str, str] | None = None, *, unset: bool = True) -> list[int]:
    """The file descriptors systemd passed (3, 4, ...), or [] when not socket-activated."""
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    if unset:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(key, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)))


def notify(state: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. ``"READY=1"``) to the service manager. True if sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(state.encode("utf-8"), address)
    except OSError:
        return False
    return True
