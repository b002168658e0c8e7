"""Helpers for the tricorn-wsgi tests: real server processes on loopback, raw sockets.

`start_server(...)` runs ``python -m tricorn.wsgi -b 127.0.0.1:0 ...`` in a subprocess (the test
apps' directory as --chdir), waits for the "Listening at:" line in its error log, and returns a
`ServerProcess` (conftest's `server_factory` fixture kills what it started at teardown). `raw()` and
`parse_responses()` talk HTTP/1.1 byte by byte. Every wait here is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTENING = re.compile(r"Listening at: (\S+)")


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    state: Path
    args: tuple[str, ...] = ()
    host: str = ""
    port: int = 0
    unix: str = ""

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def state_lines(self, name: str) -> list[str]:
        path = self.state / name
        if not path.exists():
            return []
        return path.read_text(encoding="utf-8").splitlines()

    def wait_state(self, name: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.state_lines(name)
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def clear_state(self, name: str) -> None:
        path = self.state / name
        if path.exists():
            path.unlink()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.unix)
            return s
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        return s

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_server(
    *args: str,
    app: str = "tricorn_test_apps:app",
    bind: str | None = "127.0.0.1:0",
    env: dict[str, str] | None = None,
    state: Path | None = None,
    ready_timeout: float = 15.0,
    expect_exit: bool = False,
) -> ServerProcess:
    state = state or Path(tempfile.mkdtemp(prefix="tricorn-wsgi-test-"))
    log_path = state / "server.log"
    cmd = [sys.executable, "-m", "tricorn.wsgi", "--chdir", str(HERE)]
    if bind is not None:
        cmd += ["-b", bind]
    cmd += [*args, app]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRICORN_")}
    full_env["TRICORN_TEST_STATE"] = str(state)
    full_env.update(env or {})
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, env=full_env, cwd=str(state))
    server = ServerProcess(proc, "", log_path, state, tuple(args))
    if expect_exit:
        proc.wait(ready_timeout)
        return server
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        m = LISTENING.search(server.log())
        if m:
            url = m.group(1)
            server.url = url
            if url.startswith("unix:"):
                server.unix = url[5:]
            else:
                hostport = url.split("://", 1)[1]
                host, _, port = hostport.rpartition(":")
                server.host = host.strip("[]")
                server.port = int(port)
            return server
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        time.sleep(0.02)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"server not ready in {ready_timeout} s:\n{server.log()}")


# --------------------------------------------------------------------------------------------------
# Raw HTTP


def recv_until_closed(sock: socket.socket, timeout: float = 3.0, limit: int = 64 << 20) -> bytes:
    """Read until end of input (or a reset), `timeout` seconds of silence, or `limit` bytes."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def is_closed(sock: socket.socket, timeout: float = 2.0) -> bool:
    """True when the peer has closed (EOF or reset) within `timeout`; consumes input."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def raw(server: ServerProcess, data: bytes | list[bytes], timeout: float = 3.0,
        pause: float = 0.0, expect: int | None = 1, head_request: bool = False) -> bytes:
    """Send `data` (pieces with `pause` seconds between them) on a new connection; return what
    was received once `expect` complete responses are in (None: until the server closes), at end
    of input, or after `timeout` seconds of silence."""
    with server.connect(timeout) as s:
        pieces = data if isinstance(data, list) else [data]
        for i, piece in enumerate(pieces):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        s.settimeout(timeout)
        chunks: list[bytes] = []
        while True:
            try:
                got = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not got:
                break
            chunks.append(got)
            if expect is not None:
                responses, rest = parse_responses(b"".join(chunks), head_request)
                final = [r for r in responses if r.status >= 200]
                if len(final) >= expect and not rest and _framed(final[-1]):
                    break
        return b"".join(chunks)


def _framed(resp: RawResponse) -> bool:
    """The response's end is known without a close (length or chunked framing, or no body)."""
    if resp.status in (204, 304):
        return True
    names = {n.lower() for n, _ in resp.headers}
    return b"content-length" in names or b"transfer-encoding" in names


@dataclass
class RawResponse:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    version: bytes = b"HTTP/1.1"
    raw_head: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for n, v in self.headers:
            if n.lower() == key:
                return v.decode("latin-1")
        return None

    def header_list(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for n, v in self.headers if n.lower() == key]


def parse_responses(data: bytes, head_request: bool = False) -> tuple[list[RawResponse], bytes]:
    """Parse consecutive HTTP/1.1 responses; returns them and any unparsed rest."""
    out: list[RawResponse] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = data[pos:end]
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip(), value.strip()))
        resp = RawResponse(int(code), reason, headers, b"", version, head)
        pos = end + 4
        lower = {n.lower(): v for n, v in headers}
        status = resp.status
        if status < 200 or status in (204, 304) or head_request:
            pass
        elif b"transfer-encoding" in lower:
            body = []
            while True:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    return out, data[pos:]
                size = int(data[pos:line_end].split(b";")[0], 16)
                pos = line_end + 2
                if size == 0:
                    tend = data.find(b"\r\n\r\n", pos - 2)
                    trailer_block = data[pos:tend] if tend >= pos else b""
                    for line in trailer_block.split(b"\r\n"):
                        if line:
                            n, _, v = line.partition(b":")
                            resp.trailers.append((n.strip(), v.strip()))
                    pos = tend + 4 if tend >= pos else pos + 2
                    break
                body.append(data[pos:pos + size])
                pos += size + 2
            resp.body = b"".join(body)
        elif b"content-length" in lower:
            n = int(lower[b"content-length"])
            resp.body = data[pos:pos + n]
            pos += n
        else:
            resp.body = data[pos:]
            pos = len(data)
        out.append(resp)
    return out, data[pos:]


def one_response(data: bytes, head_request: bool = False) -> RawResponse:
    responses, rest = parse_responses(data, head_request)
    assert responses, f"no response in {data[:300]!r}"
    return responses[0]


def get(host_header: str = "t", path: str = "/", extra: str = "", version: str = "1.1") -> bytes:
    return (f"GET {path} HTTP/{version}\r\nHost: {host_header}\r\n{extra}\r\n").encode("latin-1")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
