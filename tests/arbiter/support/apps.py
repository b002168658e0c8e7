"""Test apps for the test worker: ``app(path) -> bytes``."""


def app(path: str) -> bytes:
    return b"hello from " + path.encode()


def other(path: str) -> bytes:
    return b"other app"
