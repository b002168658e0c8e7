"""``wsgi.file_wrapper``: lets an application hand a file to the server (PEP 3333 "Optional
Platform-Specific File Handling").

Invariants:
- A `FileWrapper` is a valid WSGI iterable on its own: iterating reads `blksize` blocks until the
  file ends, and `close()` closes the file (if it has a ``close``). So a middleware that iterates
  it, or a server that cannot use sendfile (TLS, --no-sendfile, a non-regular file), still works.
- The server recognises exactly this type (not subclasses of other types) and then may send the
  file's bytes from its current position with ``os.sendfile``, honouring the response's
  Content-Length (never more; a shorter file closes the connection).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import Any, Final, Protocol

DEFAULT_BLOCK: Final = 65536


class FileLike(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class FileWrapper:
    """Wraps a file-like object with ``read`` (and optionally ``fileno``, ``close``)."""

    __slots__ = ("filelike", "blksize", "_closed")

    def __init__(self, filelike: FileLike, blksize: int = DEFAULT_BLOCK) -> None:
        self.filelike = filelike
        self.blksize = blksize if blksize > 0 else DEFAULT_BLOCK
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.blksize
        while True:
            data = read(size)
            if not data:
                return
            yield data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendfile_span(self) -> tuple[int, int, int] | None:
        """(fd, offset, bytes left) when the file is a regular file the OS can send from its
        current position, else None."""
        fileno = getattr(self.filelike, "fileno", None)
        if fileno is None:
            return None
        try:
            fd = fileno()
            st = os.fstat(fd)
        except (OSError, ValueError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            tell: Any = getattr(self.filelike, "tell", None)
            offset = int(tell()) if tell is not None else os.lseek(fd, 0, os.SEEK_CUR)
        except (OSError, ValueError, io.UnsupportedOperation):
            return None
        return fd, offset, max(0, st.st_size - offset)
