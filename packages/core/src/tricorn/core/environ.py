"""The PEP 3333 environ: the one builder both tricorn servers use.

Two entry points over one mapping (path decoding, header keys, repeated fields):
- `EnvironBuilder` (tricorn-wsgi), from a parsed request head, in three layers so that the
  per-request work is one dict copy plus the headers:
  per worker, `EnvironBuilder.base`: the constant keys (``wsgi.*``, SERVER_SOFTWARE, SCRIPT_NAME);
  per connection, `EnvironBuilder.for_connection`: addresses, SERVER_NAME/PORT, url scheme;
  per request, `EnvironBuilder.build`: method, path, query, protocol, headers, proxy overrides.
- `wsgi_environ` (tricorn-asgi's ``--interface wsgi``), a pure function of what an ASGI scope
  holds: the caller has already resolved trusted proxy headers into the client, scheme and host,
  and passes ``wsgi.input``.

Invariants:
- Every key PEP 3333 requires is present: REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, QUERY_STRING,
  SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, wsgi.version, wsgi.url_scheme, wsgi.input,
  wsgi.errors, wsgi.multithread, wsgi.multiprocess, wsgi.run_once (`EnvironBuilder` leaves
  wsgi.input to the handler). Values are native strings holding the bytes as latin-1
  ("bytes-as-unicode").
- PATH_INFO is the percent-decoded path below SCRIPT_NAME (bytes decoded as latin-1);
  QUERY_STRING is not decoded; a fragment is never part of either. RAW_URI holds the
  request-target as received (`wsgi_environ`: the path and query).
- Header ``X-Y`` becomes ``HTTP_X_Y``; Content-Type and Content-Length become CONTENT_TYPE and
  CONTENT_LENGTH. Names containing ``_`` (which would collide with ``-``: a client could spoof a
  header a proxy set) are dropped, refused (the caller answers 400 before building) or kept, per
  ``header_map``; `wsgi_environ` always drops them. Repeated fields are joined with ", "
  (``Cookie`` with "; ", RFC 9113 section 8.2.3), in order.
- `EnvironBuilder`: proxy headers change REMOTE_ADDR/REMOTE_PORT, wsgi.url_scheme and HTTP_HOST
  only when the peer is trusted (`tricorn.core.proxy`); otherwise they are ordinary HTTP_* keys.
  An absolute-form target (``GET http://a/x``) sets HTTP_HOST, SERVER_NAME and SERVER_PORT from
  its authority (RFC 9112 section 3.2.2); the Host header is then ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import IO, Any, Final, Protocol
from urllib.parse import unquote_to_bytes

from tricorn.core.events import F_ABSOLUTE_FORM, F_ASTERISK_FORM, F_UNDERSCORE_NAME, Request
from tricorn.core.proxy import ProxyHeaderError, TrustedPeers, resolve

Environ = dict[str, Any]

SERVER_SOFTWARE: Final = "tricorn"

_SPECIAL: Final = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_KEYS: dict[bytes, str] = {}
_KEYS_MAX: Final = 4096
_PROXY_KEYS: Final = frozenset({
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_FORWARDED_PROTOCOL",
})
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
}
_PROTOCOLS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2"}


class ErrorsStream(Protocol):
    """What ``wsgi.errors`` must offer (PEP 3333): a text stream's write, writelines and flush."""

    def write(self, text: str, /) -> int: ...

    def writelines(self, lines: Iterable[str], /) -> None: ...

    def flush(self) -> None: ...


def header_key(name: bytes) -> str:
    """The environ key of a (lower-case) header name. Thread-safe: the cache is only added to."""
    key = _KEYS.get(name)
    if key is None:
        key = _SPECIAL.get(name) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key


def _protocol(http_version: str) -> str:
    return _PROTOCOLS.get(http_version) or "HTTP/" + http_version


def _decode_path(path: bytes) -> str:
    """Percent-decoded, as latin-1 (PEP 3333)."""
    return (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")


def _add_headers(env: Environ, headers: Iterable[tuple[bytes, bytes]], drop: bool) -> bool:
    """Add the header fields to `env` (names with ``_`` left out if `drop`); True if any of them
    is a proxy header."""
    keys = _KEYS
    proxied = False
    for name, value in headers:
        if drop and b"_" in name:
            continue
        key = keys.get(name)
        if key is None:
            key = header_key(name)
        if key in _PROXY_KEYS:
            proxied = True
        old = env.get(key)
        if old is None:
            env[key] = value.decode("latin-1")
        else:
            env[key] = old + ("; " if key == "HTTP_COOKIE" else ", ") + value.decode("latin-1")
    return proxied


def _split_authority(authority: str, scheme: str) -> tuple[str, str]:
    """(host, port) of ``host[:port]`` / ``[v6]:port``; the scheme's default port if none."""
    default = "443" if scheme == "https" else "80"
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        return host + "]", rest[1:] if rest.startswith(":") and rest[1:] else default
    host, colon, port = authority.rpartition(":")
    if colon and port.isdigit():
        return host, port
    return authority, default


def wsgi_environ(
    *,
    method: str,
    script_name: str,
    raw_path: bytes,
    query_string: bytes,
    http_version: str,
    headers: Iterable[tuple[bytes, bytes]],
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    scheme: str,
    wsgi_input: IO[bytes],
    wsgi_errors: ErrorsStream,
    multithread: bool = True,
    multiprocess: bool = False,
) -> Environ:
    """The environ for one request of an ASGI scope. `raw_path` is the path as received
    (percent-encoded, without the query); `script_name` the mount point it starts with
    (``--root-path``), or ""."""
    path_info = _decode_path(raw_path)
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name):]
    raw_uri = raw_path.decode("latin-1") + ("?" + query_string.decode("latin-1")
                                            if query_string else "")
    if server is not None:
        server_name, port = server
        server_port = str(port) if port is not None else ""
    else:
        server_name, server_port = "", ""
    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query_string.decode("latin-1"),
        "RAW_URI": raw_uri,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": _protocol(http_version),
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "REMOTE_ADDR": client[0] if client is not None else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": wsgi_input,
        "wsgi.errors": wsgi_errors,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
    }
    if client is not None:
        environ["REMOTE_PORT"] = str(client[1])
    _add_headers(environ, headers, True)
    return environ


class ConnectionInfo:
    """What one connection contributes to every environ on it."""

    __slots__ = ("base", "peer_host", "trusted")

    def __init__(self, base: Environ, peer_host: str | None, trusted: bool) -> None:
        self.base = base
        self.peer_host = peer_host
        self.trusted = trusted
        """The peer may send proxy headers (and proxy headers are enabled)."""


class EnvironBuilder:
    """Builds environs for one worker. Thread-safe (the key cache is only ever added to)."""

    __slots__ = ("base", "root_path", "header_map", "trusted_peers")

    def __init__(
        self,
        *,
        errors: ErrorsStream | None = None,
        multithread: bool = False,
        multiprocess: bool = False,
        root_path: str = "",
        header_map: str = "drop",
        trusted_peers: TrustedPeers | None = None,
        file_wrapper: Callable[..., Any] | None = None,
    ) -> None:
        self.root_path = root_path.rstrip("/")
        self.header_map = header_map
        self.trusted_peers = trusted_peers
        base: Environ = {
            "wsgi.version": (1, 0),
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "SCRIPT_NAME": self.root_path,
        }
        if file_wrapper is not None:
            base["wsgi.file_wrapper"] = file_wrapper
        self.base = base

    def for_connection(
        self,
        peer: object,
        sockname: object,
        *,
        tls: bool,
    ) -> ConnectionInfo:
        """`peer`/`sockname` as socket.getpeername()/getsockname() return them (a (host, port, ...)
        tuple for TCP, a path string for Unix sockets)."""
        env = self.base.copy()
        scheme = "https" if tls else "http"
        env["wsgi.url_scheme"] = scheme
        if isinstance(sockname, tuple):
            env["SERVER_NAME"] = str(sockname[0])
            env["SERVER_PORT"] = str(sockname[1])
        else:
            env["SERVER_NAME"] = "localhost"
            env["SERVER_PORT"] = "443" if tls else "80"
        peer_host: str | None
        if isinstance(peer, tuple):
            peer_host = str(peer[0])
            env["REMOTE_ADDR"] = peer_host
            env["REMOTE_PORT"] = str(peer[1])
        else:
            peer_host = None
            env["REMOTE_ADDR"] = ""
        trusted = self.trusted_peers is not None and self.trusted_peers.trusts(peer_host)
        return ConnectionInfo(env, peer_host, trusted)

    def build(self, info: ConnectionInfo, req: Request) -> Environ:
        """The environ for `req` (without wsgi.input). Raises ProxyHeaderError (answer 400)."""
        env = info.base.copy()
        method = _METHODS.get(req.method)
        env["REQUEST_METHOD"] = method if method is not None else req.method.decode("latin-1")
        target = req.target
        flags = req.flags
        authority: str | None = None
        if target[:1] == b"/":
            path, _, query = target.partition(b"?")
        elif flags & F_ABSOLUTE_FORM:
            rest = target.partition(b"://")[2]
            slash = rest.find(b"/")
            qmark = rest.find(b"?")
            cut = min(x for x in (slash, qmark, len(rest)) if x >= 0)
            authority = rest[:cut].rpartition(b"@")[2].decode("latin-1")
            path, _, query = rest[cut:].partition(b"?")
            if not path:
                path = b"/"
        elif flags & F_ASTERISK_FORM:
            path, query = b"*", b""
        else:
            path, _, query = target.partition(b"?")
        if b"#" in path:
            path = path.partition(b"#")[0]
            query = b""
        elif b"#" in query:
            query = query.partition(b"#")[0]
        path_info = _decode_path(path)
        root = self.root_path
        if root and (path_info == root or path_info.startswith(root + "/")):
            path_info = path_info[len(root):]
        env["PATH_INFO"] = path_info
        env["QUERY_STRING"] = query.decode("latin-1")
        env["RAW_URI"] = target.decode("latin-1")
        env["SERVER_PROTOCOL"] = _protocol(req.http_version)

        drop = bool(flags & F_UNDERSCORE_NAME) and self.header_map != "dangerous"
        proxied = _add_headers(env, req.headers, drop)

        if authority is not None:
            env["HTTP_HOST"] = authority
            env["SERVER_NAME"], env["SERVER_PORT"] = _split_authority(
                authority, env["wsgi.url_scheme"])
        if proxied and info.trusted:
            self._apply_proxy(env, info, req)
        return env

    def _apply_proxy(self, env: Environ, info: ConnectionInfo, req: Request) -> None:
        peers = self.trusted_peers
        if peers is None:
            return
        fwd = resolve(req.headers, info.peer_host, peers)  # may raise ProxyHeaderError
        if fwd is None:
            return
        if fwd.client_host is not None:
            env["REMOTE_ADDR"] = fwd.client_host
            if fwd.client_port is not None:
                env["REMOTE_PORT"] = str(fwd.client_port)
            else:
                env.pop("REMOTE_PORT", None)
        if fwd.scheme is not None:
            env["wsgi.url_scheme"] = "https" if fwd.scheme in ("https", "wss") else "http"
        if fwd.host is not None:
            env["HTTP_HOST"] = fwd.host


__all__ = [
    "SERVER_SOFTWARE",
    "ConnectionInfo",
    "Environ",
    "EnvironBuilder",
    "ProxyHeaderError",
    "header_key",
    "wsgi_environ",
]
