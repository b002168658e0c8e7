"""The minimal PEP 3333 environ mapping, from what any tricorn server knows about a request.

`wsgi_environ` is a pure function: no socket, no proxy logic (the caller resolves trusted proxy
headers first and passes the resulting client, scheme and host), no body stream policy (the caller
passes ``wsgi.input``). The ASGI server's ``--interface wsgi`` uses it; it is the place for any other
component that needs an environ without depending on tricorn-wsgi.

Invariants:
- Every key PEP 3333 requires is present: REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, QUERY_STRING,
  SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, wsgi.version, wsgi.url_scheme, wsgi.input,
  wsgi.errors, wsgi.multithread, wsgi.multiprocess, wsgi.run_once. Values are native strings
  holding the bytes as latin-1 ("bytes-as-unicode").
- PATH_INFO is the percent-decoded path *below* SCRIPT_NAME (bytes decoded as latin-1);
  QUERY_STRING is not decoded; RAW_URI is the path and query as received.
- Header ``X-Y`` becomes ``HTTP_X_Y``; Content-Type and Content-Length become CONTENT_TYPE and
  CONTENT_LENGTH. Names containing ``_`` are dropped (they would collide with ``-`` names: a client
  could spoof a header a proxy set; Gunicorn's default). Repeated fields are joined with ", "
  (``Cookie`` with "; "), in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any, Final
from urllib.parse import unquote_to_bytes

__all__ = ["header_key", "wsgi_environ"]

_SPECIAL: Final = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_PROTOCOLS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2"}
_KEYS: dict[bytes, str] = {}
_KEYS_MAX: Final = 4096


def header_key(name: bytes) -> str:
    """The environ key of a (lower-case) header name."""
    key = _KEYS.get(name)
    if key is None:
        key = _SPECIAL.get(name) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key


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
    wsgi_errors: IO[str],
    multithread: bool = True,
    multiprocess: bool = False,
) -> dict[str, Any]:
    """The environ for one request. `raw_path` is the path as received (percent-encoded, without
    the query); `script_name` the mount point it starts with (``--root-path``), or ""."""
    path_info = unquote_to_bytes(raw_path).decode("latin-1") if b"%" in raw_path \
        else raw_path.decode("latin-1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name):]
    raw_uri = raw_path.decode("latin-1") + ("?" + query_string.decode("latin-1")
                                            if query_string else "")
    if server is not None:
        server_name, port = server
        server_port = str(port) if port is not None else ""
    else:
        server_name, server_port = "", ""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query_string.decode("latin-1"),
        "RAW_URI": raw_uri,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": _PROTOCOLS.get(http_version, "HTTP/" + http_version),
        "SERVER_SOFTWARE": "tricorn",
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
    for name, value in headers:
        if b"_" in name:
            continue
        key = header_key(name)
        text = value.decode("latin-1")
        old = environ.get(key)
        if old is None:
            environ[key] = text
        else:
            environ[key] = old + ("; " if key == "HTTP_COOKIE" else ", ") + text
    return environ
