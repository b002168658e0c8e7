"""The master's listening sockets: inherited ones first, then the configured addresses.

Sockets come from three places, in this order:
1. ``TRICORN_FD`` (comma-separated descriptors) when this master was started by an older one on
   SIGUSR2; ``TRICORN_PID`` names that master.
2. systemd socket activation (``LISTEN_FDS``/``LISTEN_PID``, see `tricorn.arbiter.systemd`).
3. Every configured address (bind/host/port/uds/fd) that no inherited socket already serves is
   bound with `tricorn.core.sockets.listen`. With inherited sockets and the bind setting left at its
   default, nothing more is bound.

Invariants:
- An inherited socket is never ``listen()``-ed again if it is already listening and never unlinked
  (it belongs to whoever passed it).
- A configured TCP address with port 0 is served by an inherited socket on the same host (a
  re-executed master keeps the port its predecessor was given).
- All or nothing: on a failure every socket opened here is closed and `ListenError` is raised.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping, Sequence

from tricorn.core.settings import BACKLOG, REUSE_PORT, BindAddress, Settings, bind_addresses
from tricorn.core.sockets import Listener, ListenError, listen

from . import systemd

__all__ = ["FD_ENV", "PID_ENV", "inherited_fds", "open_listeners", "same_address"]

FD_ENV = "TRICORN_FD"
PID_ENV = "TRICORN_PID"


def inherited_fds(environ: MutableMapping[str, str]) -> tuple[list[int], int | None, bool]:
    """``(fds, old_master_pid, from_systemd)``; removes the variables from `environ`."""
    raw = environ.pop(FD_ENV, "")
    old_pid_text = environ.pop(PID_ENV, "")
    old_pid = int(old_pid_text) if old_pid_text.isdigit() else None
    fds = [int(part) for part in raw.split(",") if part.strip().isdigit()]
    if fds:
        systemd.listen_fds(environ)  # drop stale systemd variables too
        return fds, old_pid, False
    return systemd.listen_fds(environ), old_pid, True


def _resolve(address: BindAddress) -> set[str]:
    try:
        infos = socket.getaddrinfo(address.host, address.port, 0, socket.SOCK_STREAM)
    except OSError:
        return {address.host}
    return {str(info[4][0]) for info in infos}


def same_address(listener: Listener, address: BindAddress) -> bool:
    """Whether `listener` already serves `address`."""
    sock = listener.sock
    if address.kind == "fd":
        return sock.fileno() == address.fd
    try:
        name = sock.getsockname()
    except OSError:
        return False
    if address.kind == "unix":
        return sock.family == socket.AF_UNIX and name in (address.path, address.path.encode())
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    host, port = name[0], name[1]
    if address.port not in (0, port):
        return False
    return host in _resolve(address)


def open_listeners(
    cfg: Settings,
    fds: Sequence[int] = (),
    *,
    current: Sequence[Listener] = (),
    inherited: Sequence[Listener] = (),
) -> list[Listener]:
    """Listeners for `cfg`: `current` ones that serve a configured address are reused, `fds` are
    adopted, the rest is bound. `inherited` are listeners adopted earlier from systemd, kept on a
    reload exactly as if their fds had just been passed (so the default bind stays suppressed and
    they stay served). Raises `ListenError`."""
    backlog, reuse_port = cfg[BACKLOG], cfg[REUSE_PORT]
    opened: list[Listener] = []
    try:
        fresh = [listen(BindAddress("fd", fd=fd), backlog=backlog) for fd in fds]
        opened.extend(fresh)
        adopted = [*inherited, *fresh]
        chosen: list[Listener] = []
        addresses = bind_addresses(cfg)
        default_bind = cfg.source("bind").startswith("default")
        for address in addresses:
            match = next((x for x in [*current, *adopted] if same_address(x, address)), None)
            if match is not None:
                if match not in chosen:
                    chosen.append(match)
                continue
            if adopted and default_bind and address.kind == "tcp":
                continue
            listener = listen(address, backlog=backlog, reuse_port=reuse_port)
            opened.append(listener)
            chosen.append(listener)
        for listener in adopted:  # systemd may pass more sockets than are configured
            if listener not in chosen:
                chosen.append(listener)
    except BaseException:
        for listener in opened:
            listener.close()
        raise
    if not chosen:
        raise ListenError("(nothing)", "no address to listen on")
    return chosen


def close_listener(listener: Listener, *, unlink: bool) -> None:
    """Close; remove a Unix socket file this master created only when `unlink`."""
    if unlink:
        listener.close()
        return
    try:
        listener.sock.close()
    except OSError:
        pass


def chown_unix(listeners: Sequence[Listener], uid: int | None, gid: int | None) -> None:
    """Give the workers' user the Unix socket files the master created."""
    if uid is None and gid is None:
        return
    for listener in listeners:
        if listener.address.kind == "unix":
            try:
                os.chown(listener.address.path, -1 if uid is None else uid, -1 if gid is None else gid)
            except OSError:
                pass
