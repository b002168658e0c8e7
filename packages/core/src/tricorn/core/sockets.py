"""Listening sockets from bind addresses, and the server's TLS context.

Shared by every tricorn server (WSGI workers, the ASGI server, the arbiter's master): they all turn
`BindAddress` records (``tricorn.core.settings.parse_bind``: ``HOST:PORT``, ``[::1]:PORT``,
``unix:PATH``, ``fd://N``) into listening sockets here, and build the `ssl.SSLContext` here.

Invariants:
- A `Listener` is listening when returned, and its `address` is the address actually bound: a TCP
  port 0 is replaced by the port the kernel chose, so servers can log the real address.
- TCP sockets get ``SO_REUSEADDR`` (a restart never waits for TIME_WAIT), ``SO_REUSEPORT`` only when
  asked, and IPv6 sockets ``IPV6_V6ONLY`` (``[::]`` and ``0.0.0.0`` can both be bound).
- A Unix socket file is replaced only if it is stale (a socket nobody accepts on); a live one or a
  file that is not a socket is an error. `Listener.close` unlinks the file only if it is still the
  one this listener created (same device, inode and ctime), so it never removes a successor's.
- An inherited socket (``fd://N``) must be a stream socket; ``listen()`` is called on it only if it
  is not listening yet (systemd sockets are not listened on twice).
- `listen_all` is all or nothing: on the first failure the sockets opened so far are closed and a
  `ListenError` naming the address is raised.
- Listening sockets are non-blocking and not inheritable (except inherited fds, left as they are).
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .settings import (
    BACKLOG,
    CA_CERTS,
    CERT_REQS,
    CERTFILE,
    KEYFILE,
    REUSE_PORT,
    BindAddress,
    Settings,
    bind_addresses,
)

__all__ = [
    "ListenError",
    "Listener",
    "listen",
    "listen_all",
    "listeners_from_settings",
    "ssl_context",
    "ssl_context_from_settings",
]


class ListenError(Exception):
    """A listening socket could not be created; `str(exc)` names the address and the reason."""

    def __init__(self, address: BindAddress | str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


@dataclass(eq=False, slots=True)
class Listener:
    """A listening socket and the address it is bound to."""

    sock: socket.socket
    address: BindAddress
    _unix_identity: tuple[int, int, int] | None = field(default=None, repr=False)

    @property
    def is_unix(self) -> bool:
        return self.address.kind == "unix" or self.sock.family == socket.AF_UNIX

    def url(self, tls: bool = False) -> str:
        """``http://HOST:PORT`` (or https), ``unix:PATH`` or ``fd://N``, for logs."""
        addr = self.address
        scheme = "https" if tls else "http"
        if addr.kind == "tcp":
            return f"{scheme}://{addr}"
        if addr.kind == "fd" and addr.host:
            tcp = BindAddress("tcp", host=addr.host, port=addr.port)
            return f"{scheme}://{tcp} (fd://{addr.fd})"
        return str(addr)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        """Close the socket; remove the Unix socket file if this listener created it."""
        try:
            self.sock.close()
        except OSError:
            pass
        if self._unix_identity is not None:
            path = self.address.path
            try:
                if _identity(path) == self._unix_identity:
                    os.unlink(path)
            except OSError:
                pass
            self._unix_identity = None


def _identity(path: str) -> tuple[int, int, int]:
    """What tells this socket file from a later one at the same path (inodes are reused)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_ctime_ns


def _errmsg(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _listen_tcp(addr: BindAddress, backlog: int, reuse_port: bool) -> Listener:
    try:
        infos = socket.getaddrinfo(
            addr.host, addr.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(addr, f"cannot resolve {addr.host!r}: {exc.strerror}") from exc
    if not infos:
        raise ListenError(addr, f"cannot resolve {addr.host!r}")
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise ListenError(addr, "SO_REUSEPORT is not available on this system")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
        host, port = sock.getsockname()[:2]
    except OSError as exc:
        sock.close()
        raise ListenError(addr, _errmsg(exc)) from exc
    except ListenError:
        sock.close()
        raise
    return Listener(sock, BindAddress("tcp", host=host, port=port))


def _remove_stale_unix(addr: BindAddress) -> None:
    path = addr.path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ListenError(addr, _errmsg(exc)) from exc
    if not stat.S_ISSOCK(st.st_mode):
        raise ListenError(addr, f"{path!r} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # stale: nobody accepts on it
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ListenError(addr, f"cannot check the existing socket: {_errmsg(exc)}") from exc
    else:
        raise ListenError(addr, "address already in use (another server accepts on it)")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ListenError(addr, f"cannot remove the stale socket: {_errmsg(exc)}") from exc


def _listen_unix(addr: BindAddress, backlog: int) -> Listener:
    _remove_stale_unix(addr)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(addr.path)
        identity = _identity(addr.path)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(addr, _errmsg(exc)) from exc
    return Listener(sock, addr, identity)


def _listen_fd(addr: BindAddress, backlog: int) -> Listener:
    try:
        sock = socket.socket(fileno=addr.fd)
    except OSError as exc:
        raise ListenError(addr, _errmsg(exc)) from exc
    try:
        if sock.type != socket.SOCK_STREAM:
            raise ListenError(addr, "not a stream socket")
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.listen(backlog)
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host, port = sock.getsockname()[:2]
            shown = BindAddress("fd", host=host, port=port, fd=addr.fd)
        else:
            shown = addr
    except OSError as exc:
        sock.detach()  # leave the inherited descriptor alone
        raise ListenError(addr, _errmsg(exc)) from exc
    except ListenError:
        sock.detach()
        raise
    return Listener(sock, shown)


def listen(address: BindAddress, *, backlog: int = 2048, reuse_port: bool = False) -> Listener:
    """One listening socket. Raises `ListenError`."""
    if address.kind == "tcp":
        return _listen_tcp(address, backlog, reuse_port)
    if address.kind == "unix":
        return _listen_unix(address, backlog)
    if address.kind == "fd":
        return _listen_fd(address, backlog)
    raise ListenError(address, f"unknown address kind {address.kind!r}")


def listen_all(
    addresses: Iterable[BindAddress], *, backlog: int = 2048, reuse_port: bool = False
) -> list[Listener]:
    """Listening sockets for every address, or none (see the module invariants)."""
    done: list[Listener] = []
    try:
        for address in addresses:
            done.append(listen(address, backlog=backlog, reuse_port=reuse_port))
    except BaseException:
        for listener in done:
            listener.close()
        raise
    if not done:
        raise ListenError("(nothing)", "no address to listen on")
    return done


def listeners_from_settings(cfg: Settings) -> list[Listener]:
    """`listen_all` for the bind/host/port/uds/fd, backlog and reuse_port settings."""
    return listen_all(bind_addresses(cfg), backlog=cfg[BACKLOG], reuse_port=cfg[REUSE_PORT])


# --------------------------------------------------------------------------------------------------
# TLS


def ssl_context(
    certfile: str,
    keyfile: str | None = None,
    *,
    ca_certs: str | None = None,
    cert_reqs: int = ssl.CERT_NONE,
    ciphers: str | None = None,
    alpn: Sequence[str] = ("http/1.1",),
) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or newer, the certificate chain loaded, client certificates
    verified against `ca_certs` per `cert_reqs` (0 none, 1 optional, 2 required).
    Raises `ValueError` with a readable reason when a file cannot be loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load certificate {certfile!r} / key {keyfile!r}: {exc}") from exc
    if ca_certs:
        try:
            ctx.load_verify_locations(cafile=ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load CA certificates {ca_certs!r}: {exc}") from exc
    if cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
        raise ValueError(f"cert_reqs must be 0, 1 or 2, got {cert_reqs!r}")
    if cert_reqs != ssl.CERT_NONE and not ca_certs:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = ssl.VerifyMode(cert_reqs)
    if ciphers:
        try:
            ctx.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise ValueError(f"invalid cipher list {ciphers!r}: {exc}") from exc
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def ssl_context_from_settings(cfg: Settings) -> ssl.SSLContext | None:
    """The context for certfile/keyfile/ca_certs/cert_reqs, or None when TLS is off."""
    certfile = cfg[CERTFILE]
    if certfile is None:
        return None
    return ssl_context(
        certfile, cfg[KEYFILE], ca_certs=cfg[CA_CERTS], cert_reqs=cfg[CERT_REQS]
    )
