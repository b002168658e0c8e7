"""A reference WSGI deployment from the standard library: `python -m lab.apps.stdlib_server`.

`wsgiref` with one thread per connection (HTTP/1.0, no keep-alive). It is the floor every real server
should beat, it needs nothing installed, so the lab's runner tests and the smoke study always have one
deployment that works. It binds loopback only, accepts port 0, and prints `LISTENING http://HOST:PORT`
once bound. Access logging is off (it would dominate the measurement).
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import sys
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lab.net import ensure_loopback


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one daemon thread per connection."""

    daemon_threads = True
    request_queue_size = 1024


class ThreadingWSGIServer6(ThreadingWSGIServer):
    """The same on IPv6 loopback."""

    address_family = socket.AF_INET6


class QuietHandler(WSGIRequestHandler):
    """No access log line per request."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return


def load(spec: str) -> Any:
    """`module:attribute` → the object."""
    module_name, _, attribute = spec.partition(":")
    module = __import__(module_name, fromlist=[attribute or "app"])
    return getattr(module, attribute or "app")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.apps.stdlib_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("app", help="MODULE:APP of a WSGI application")
    args = parser.parse_args(argv)
    ensure_loopback(args.host)
    server_class: type[ThreadingWSGIServer] = ThreadingWSGIServer
    if ":" in args.host:
        server_class = ThreadingWSGIServer6
    server = make_server(
        args.host, args.port, load(args.app), server_class=server_class, handler_class=QuietHandler
    )
    host, port = server.server_address[:2]
    shown = f"[{host!s}]" if ":" in str(host) else str(host)
    print(f"LISTENING http://{shown}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
