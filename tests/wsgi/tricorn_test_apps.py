"""WSGI applications the tests run through the real server (imported by the server process).

`app` routes on PATH_INFO; `validated` is the same app wrapped in `wsgiref.validate.validator`
(which asserts PEP 3333 on both sides: environ, input, start_response, iterable, close).
Side effects the tests check (close() calls, canary records) go to files under the directory in
the TRICORN_TEST_STATE environment variable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

StartResponse = Callable[..., Any]
STATE = os.environ.get("TRICORN_TEST_STATE", tempfile.gettempdir())


def _record(name: str, text: str) -> None:
    with open(os.path.join(STATE, name), "a", encoding="utf-8") as f:
        f.write(text + "\n")


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _json(start_response: StartResponse, obj: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


class Tracked:
    """An iterable whose close() is recorded (in the file ``closed``) with a tag."""

    def __init__(self, tag: str, items: Iterable[bytes], fail_at: int = -1) -> None:
        self.tag = tag
        self.items = items
        self.fail_at = fail_at

    def __iter__(self) -> Iterator[bytes]:
        for i, item in enumerate(self.items):
            if i == self.fail_at:
                raise RuntimeError("boom in the middle of the body")
            yield item

    def close(self) -> None:
        _record("closed", self.tag)


def _env_view(environ: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if isinstance(value, (str, bool, int)) or key == "wsgi.version":
            out[key] = value
    out["has_input"] = hasattr(environ["wsgi.input"], "read")
    out["has_errors"] = hasattr(environ["wsgi.errors"], "write")
    out["has_file_wrapper"] = "wsgi.file_wrapper" in environ
    return out


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    q = _query(environ)
    inp = environ["wsgi.input"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello world\n"]
    if path == "/environ" or path.startswith("/environ/"):
        return _json(start_response, _env_view(environ))
    if path == "/pid":
        return _json(start_response, {"pid": os.getpid()})
    if path == "/echo":
        body = inp.read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echo-stream":  # echo while reading: no Content-Length, chunked out
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return iter(lambda: inp.read(65536), b"")
    if path == "/read":
        # exercise the file API: mode=n (read(n) loop), line (readline), iter, lines
        mode = q.get("mode", "all")
        parts: list[bytes] = []
        if mode == "n":
            size = int(q.get("n", "7"))
            while True:
                piece = inp.read(size)
                if not piece:
                    break
                parts.append(piece)
        elif mode == "line":
            size = int(q.get("n", "-1"))
            while True:
                line = inp.readline(size)
                if not line:
                    break
                parts.append(line)
        elif mode == "iter":
            parts = list(inp)
        elif mode == "lines":
            parts = inp.readlines()
        else:
            parts = [inp.read()]
        after = inp.read(10)
        return _json(start_response, {"parts": [base64.b64encode(p).decode() for p in parts],
                                      "after": after.decode("latin-1")})
    if path == "/hash":  # stream the body in chunks, answer its sha256 and length
        h = hashlib.sha256()
        total = 0
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            h.update(chunk)
            total += len(chunk)
        return _json(start_response, {"sha256": h.hexdigest(), "length": total})
    if path == "/consume":  # read the body while iterating (a close()-tracked iterable)
        start_response("200 OK", [("Content-Type", "text/plain")])

        def consume() -> Iterator[bytes]:
            total = 0
            while True:
                chunk = inp.read(65536)
                if not chunk:
                    break
                total += len(chunk)
            yield b"%d" % total
        return Tracked(q.get("tag", "consume"), consume())
    if path == "/download":
        size = int(q.get("size", "0"))
        block = b"x" * 65536
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])

        def gen() -> Iterator[bytes]:
            left = size
            while left > 0:
                n = min(left, len(block))
                yield block[:n]
                left -= n
        return Tracked(q.get("tag", "download"), gen())
    if path == "/stream":
        n = int(q.get("n", "3"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(q.get("tag", "stream"), (b"part%d\n" % i for i in range(n)))
    if path == "/tracked":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(q.get("tag", "tracked"), [b"a", b"b", b"c"],
                       fail_at=int(q.get("fail_at", "-1")))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written;")
        return [b"returned"]
    if path == "/slowstream":  # the head and a first part at once, the rest after s seconds
        delay = float(q.get("s", "0.5"))
        start_response("200 OK", [("Content-Type", "text/plain")])

        def parts() -> Iterator[bytes]:
            yield b"first;"
            time.sleep(delay)
            yield b"last"

        return parts()
    if path == "/slow":
        time.sleep(float(q.get("s", "1")))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(q.get("tag", "slow"), [b"slept\n"])
    if path == "/error":
        raise RuntimeError("the app failed on purpose")
    if path == "/error-late":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked("error-late", [b"first", b"second"], fail_at=1)
    if path == "/exc-info":
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"replaced\n"]
    if path == "/exc-info-late":
        def late() -> Iterator[bytes]:
            yield b"head sent"
            try:
                raise ValueError("too late")
            except ValueError:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"never"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return late()
    if path == "/hop":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  (q.get("name", "Transfer-Encoding"), q.get("value", "chunked"))])
        return [b"nope"]
    if path == "/conn-close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"bye"]
    if path == "/inject":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Bad", "a\r\nSet-Cookie: x=1")])
        return [b"nope"]
    if path == "/bad-name":
        start_response("200 OK", [("X Y", "1")])
        return [b"nope"]
    if path == "/cl":  # declared Content-Length vs actual body
        declared = int(q.get("declared", "5"))
        actual = int(q.get("actual", "5"))
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(declared))])
        return iter([b"y" * actual])
    if path == "/no-content":
        start_response("204 No Content", [])
        return [b""]
    if path == "/file":
        size = int(q.get("size", "100000"))
        fd, name = tempfile.mkstemp(dir=STATE)
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(range(256)) * (size // 256) + b"z" * (size % 256))
        f2 = open(name, "rb")  # noqa: SIM115
        os.unlink(name)
        offset = int(q.get("offset", "0"))
        f2.seek(offset)
        headers = [("Content-Type", "application/octet-stream")]
        if "declared" in q:
            headers.append(("Content-Length", q["declared"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f2, 8192)
    if path == "/expect":  # read the body only when asked to
        if q.get("read") == "1":
            body = inp.read()
            return _json(start_response, {"length": len(body)})
        start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                            ("Content-Length", "6")])
        return [b"denied"]
    if path == "/errors":
        environ["wsgi.errors"].write("message to wsgi.errors\n")
        environ["wsgi.errors"].flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


validated = validator(app)


def canary(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Records every request it is given (file ``canary``) and echoes it as JSON."""
    body = environ["wsgi.input"].read()
    record = {
        "method": environ["REQUEST_METHOD"],
        "raw_uri": environ.get("RAW_URI"),
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "protocol": environ["SERVER_PROTOCOL"],
        "headers": {k: v for k, v in environ.items()
                    if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH")},
        "body_b64": base64.b64encode(body).decode(),
    }
    _record("canary", json.dumps(record, sort_keys=True))
    return _json(start_response, record)
