"""tricorn started the way systemd starts docs/deploy/tricorn.service with docs/deploy/tricorn.socket:
the ExecStart line of the unit, the ListenStream sockets of the socket unit created by the test and
inherited as fds 3, 4 (LISTEN_FDS/LISTEN_PID), and NOTIFY_SOCKET read by the test.

tests/arbiter/test_features.py covers activation with one TCP socket and the notify messages one by
one with the test worker; this test runs the documented units with the real sync worker, both
socket kinds, and a reload in between, and checks the sockets are the inherited ones throughout.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
from pathlib import Path

from deploy_harness import DEPLOY_DOCS, SUPPORT, free_port, get_json, request, wait_for


def unit_values(name: str, key: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in (DEPLOY_DOCS / name).read_text().splitlines()
            if line.startswith(f"{key}=")]


def socket_inodes(pid: int) -> set[int]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def test_documented_units_socket_activation_and_sd_notify(server, tmp_path: Path) -> None:
    # The socket unit: a Unix socket and a TCP socket, bound and listening before tricorn starts.
    streams = unit_values("tricorn.socket", "ListenStream")
    assert streams == ["/run/tricorn/tricorn.sock", "127.0.0.1:8000"]
    backlog = int(unit_values("tricorn.socket", "Backlog")[0])
    path = tmp_path / "run" / "tricorn.sock"
    path.parent.mkdir()
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    os.chmod(path, int(unit_values("tricorn.socket", "SocketMode")[0], 8))
    unix.listen(backlog)
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(backlog)
    port = tcp.getsockname()[1]
    inodes = {os.fstat(unix.fileno()).st_ino, os.fstat(tcp.fileno()).st_ino}
    file_inode = path.stat().st_ino

    # The service unit: its ExecStart, with the program, the app and the status port made local.
    (exec_start,) = unit_values("tricorn.service", "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/bin/tricorn") and argv[-1] == "myproject.wsgi:application"
    status_port = free_port()
    args = [a.replace("127.0.0.1:9100", f"127.0.0.1:{status_port}") for a in argv[1:-1]]
    args.append("deploy_app:wsgi")

    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(30)
    messages: list[str] = []

    def receive_until(word: str) -> None:
        start = len(messages)
        while not any(word in m for m in messages[start:]):
            messages.append(notify.recv(4096).decode())

    master = server("tricorn", *args, env={"NOTIFY_SOCKET": notify_path},
                    prefix=[sys.executable, str(SUPPORT / "sd_exec.py"), str(unix.fileno()),
                            str(tcp.fileno()), "--"],
                    pass_fds=[unix.fileno(), tcp.fileno()])
    unix.close()
    tcp.close()  # only tricorn holds them now
    try:
        receive_until("READY=1")
        assert any(f"MAINPID={master.pid}" in m for m in messages)
        workers = set(master.workers())
        assert len(workers) == 4  # --workers 4, all ready before READY=1
        assert get_json(str(path), "/info")["path_info"] == "/info"
        assert get_json(("127.0.0.1", port), "/info")["path_info"] == "/info"
        assert request(("127.0.0.1", status_port), "/readyz")[0] == 200
        log = master.text()
        assert "Listening at: fd://3 (" in log, log  # the Unix socket (logged without its path)
        assert f"Listening at: http://127.0.0.1:{port} (fd://4)" in log, log
        assert log.count("Listening at:") == 2  # nothing else bound
        assert inodes <= socket_inodes(master.pid)

        master.send(signal.SIGHUP)  # systemctl reload
        receive_until("RELOADING=1")
        receive_until("READY=1")
        wait_for(lambda: not (set(master.workers()) & workers), 20, what="old workers retired")
        assert len(master.workers()) == 4
        assert get_json(str(path), "/info")["path_info"] == "/info"
        assert get_json(("127.0.0.1", port), "/info")["path_info"] == "/info"
        assert inodes <= socket_inodes(master.pid)  # the same sockets, not re-bound
        assert path.stat().st_ino == file_inode
        assert master.text().count("Listening at:") == 2

        master.send(signal.SIGTERM)  # systemctl stop (KillMode=mixed: TERM to the master)
        receive_until("STOPPING=1")
        assert master.proc.wait(15) == 0
        assert path.exists() and path.stat().st_ino == file_inode  # systemd's file is left alone
    finally:
        notify.close()
