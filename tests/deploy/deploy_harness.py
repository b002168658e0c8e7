"""Helpers for the deployment tests: real tricorn processes, a real nginx rendered from the template in
docs/deploy/, a tiny HTTP/1.1 client with a chosen source address, /proc readings.

Every wait is bounded in time; every loop in the tests is bounded in count.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT = HERE / "support"
REPO = HERE.parent.parent
DEPLOY_DOCS = REPO / "docs" / "deploy"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], object], timeout: float, what: str = "condition",
             interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRICORN_") and k not in
           ("PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "LISTEN_FDS", "LISTEN_PID",
            "NOTIFY_SOCKET")}
    env["PYTHONPATH"] = str(SUPPORT)
    env.update(extra or {})
    return env


# --- HTTP ---------------------------------------------------------------------------------------

def connect(address: str | tuple[str, int], source: str | None = None, timeout: float = 10.0,
            tls: bool = False) -> socket.socket:
    """A connected socket to ``(host, port)`` or a Unix path, from ``source`` (a loopback address)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(address)
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname="localhost")
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length or until close)."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError(f"connection closed before a response head: {bytes(data[:80])!r}")
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = bytearray(rest)
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = sock.recv(min(1 << 20, length - len(body)))
            if not chunk:
                raise OSError("connection closed mid-body")
            body += chunk
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        raise OSError("chunked responses are not expected here")
    else:
        while chunk := sock.recv(65536):
            body += chunk
    return status, headers, bytes(body)


def request(address: str | tuple[str, int], path: str, method: str = "GET",
            headers: Iterable[tuple[str, str]] = (), body: bytes = b"", source: str | None = None,
            tls: bool = False, host: str = "example.test", timeout: float = 10.0
            ) -> tuple[int, dict[str, str], bytes]:
    with connect(address, source, timeout, tls) as sock:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return read_response(sock)


def get_json(address: str | tuple[str, int], path: str, **kwargs: object) -> dict:
    status, _, body = request(address, path, **kwargs)  # type: ignore[arg-type]
    assert status == 200, (status, body[:200])
    return json.loads(body)


# --- processes ----------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class Server:
    """A tricorn command (``tricorn``, ``tricorn-wsgi``, ``tricorn-asgi``) as a real process."""

    def __init__(self, command: str, args: list[str], tmp: Path, env: dict[str, str] | None = None,
                 prefix: list[str] | None = None, **popen: object) -> None:
        self.log = tmp / f"{command}-{time.monotonic_ns()}.log"
        self.log.touch()
        self.argv = [*(prefix or []), str(BIN / command), *args]
        self.proc = subprocess.Popen(self.argv, cwd=str(SUPPORT), env=clean_env(env),
                                     stdout=popen.pop("stdout", subprocess.DEVNULL),
                                     stderr=open(self.log, "ab"),  # noqa: SIM115
                                     **popen)  # type: ignore[call-overload]
        self.pid = self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[int]:
        return children(self.pid)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def wait_http(self, address: str | tuple[str, int], timeout: float = 20.0) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            return request(address, "/info", timeout=2)[0] == 200
        wait_for(up, timeout, what=f"{self.argv} to answer")


# --- nginx --------------------------------------------------------------------------------------

def nginx_binary() -> str:
    """nginx, installed with apt-get when it is missing (the tests run as root in CI)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        import pytest
        pytest.skip("nginx is not installed and cannot be installed here (not root / no apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"], env=env,
                   check=True, timeout=300, stdout=subprocess.DEVNULL)
    return shutil.which("nginx") or "/usr/sbin/nginx"


def make_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not shutil.which("openssl"):
        import pytest
        pytest.skip("openssl (for nginx's test certificate) is not installed")
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "2", "-subj", "/CN=localhost"],
                       check=True, timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def render_nginx_conf(values: dict[str, str]) -> str:
    text = (DEPLOY_DOCS / "nginx.conf").read_text()
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", value)
    left = [line for line in text.splitlines() if "@@" in line and not line.lstrip().startswith("#")]
    assert not left, f"unfilled markers in docs/deploy/nginx.conf: {left}"
    return text


class Nginx:
    """nginx started from docs/deploy/nginx.conf in its own folder, in the foreground."""

    def __init__(self, tmp: Path, upstream: str, prefix: str = "",
                 proxy_headers: str = "nginx-x-forwarded.conf") -> None:
        binary = nginx_binary()
        self.dir = tmp / f"nginx-{time.monotonic_ns()}"
        (self.dir / "temp").mkdir(parents=True)
        cert, key = make_cert(tmp)
        self.port, self.tls_port = free_port(), free_port()
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(render_nginx_conf({
            "UPSTREAM": upstream, "LISTEN": f"127.0.0.1:{self.port}",
            "TLS_LISTEN": f"127.0.0.1:{self.tls_port}", "CERT": str(cert), "KEY": str(key),
            "PREFIX": prefix, "PROXY_HEADERS": str(DEPLOY_DOCS / proxy_headers),
            "ACCESS_LOG": str(self.dir / "access.log"), "TEMP": str(self.dir / "temp"),
        }))
        self.error_log = self.dir / "error.log"
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(self.conf), "-e", str(self.error_log),
             "-g", f"daemon off; pid {self.dir / 'nginx.pid'}; user root;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(self._listening, 10, what="nginx to listen")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"nginx exited {self.proc.returncode}: {err}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def tls_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.tls_port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
