"""A WSGI app for the integration tests with the real sync/gthread workers."""

import os
import time


def app(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ.get("PATH_INFO", "/")
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING", "s=1").partition("=")[2] or 1))
        body = b"slow done"
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/hang":
        while True:
            time.sleep(3600)
    else:
        body = b"hello wsgi"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
