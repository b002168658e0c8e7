"""Settings and services of the master: Gunicorn config files and hooks, systemd socket
activation, recycling (max-requests, memory, lifetime), log reopening, the status listener,
the control socket, --check-config / --print-config."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from arbiter_harness import SUPPORT, http_get, wait_for
from test_reload import LoadLoop


def test_gunicorn_style_config_file_and_hooks(tricorn, tmp_path: Path) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text('''
import os

bind = "127.0.0.1:0"
workers = 2
worker_class = "testworker:TestWorker"
timeout = 10
graceful_timeout = 5
keepalive = 2
proc_name = "gconf"
raw_env = ["FOO=bar"]
preload_app = False
loglevel = "info"
max_requests = 0
worker_tmp_dir = None

def on_starting(server):
    server.log.info("HOOK on_starting")

def when_ready(server):
    server.log.info("HOOK when_ready %d", len(server.LISTENERS))

def pre_fork(server, worker):
    server.log.info("HOOK pre_fork age=%s", worker.age)

def post_fork(server, worker):
    server.log.info("HOOK post_fork %s", worker.pid)

def post_worker_init(worker):
    worker.log.info("HOOK post_worker_init %s", worker.pid)

def nworkers_changed(server, new_value, old_value):
    server.log.info("HOOK nworkers_changed %s -> %s", old_value, new_value)

def worker_int(worker):
    worker.log.info("HOOK worker_int %s", worker.pid)

def worker_exit(server, worker):
    server.log.info("HOOK worker_exit %s", worker.pid)

def child_exit(server, worker):
    server.log.info("HOOK child_exit %s", worker.pid)

def on_exit(server):
    server.log.info("HOOK on_exit")
''')
    master = tricorn("-c", str(config), worker_class=None)
    master.wait_ready(2)
    assert master.get("/env?name=FOO") == (200, b"bar")
    master.send(signal.SIGTTIN)
    master.wait_log(r"HOOK nworkers_changed 2 -> 3")
    master.wait_ready(3)
    master.send(signal.SIGINT)
    assert master.wait_exit(10) == 0
    log = master.log()
    for pattern, count in [("HOOK on_starting", 1), ("HOOK when_ready 1", 1),
                           ("HOOK pre_fork age=", 3), ("HOOK post_fork", 3),
                           ("HOOK post_worker_init", 3), ("HOOK worker_int", 3),
                           ("HOOK worker_exit", 3), ("HOOK child_exit", 3), ("HOOK on_exit", 1)]:
        assert len(re.findall(pattern, log)) == count, (pattern, log)


def test_systemd_socket_activation(tricorn, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    log = tmp_path / "systemd.log"
    log.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICORN_")}
    env["PYTHONPATH"] = str(SUPPORT)
    script = (f'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@" 3<&{fd}')
    proc = subprocess.Popen(
        ["bash", "-c", script, "bash", sys.executable, "-m", "tricorn.arbiter", "-w", "2",
         "-k", "testworker:TestWorker", "--error-logfile", str(log), "apps:app"],
        cwd=str(SUPPORT), env=env, pass_fds=[fd], stderr=subprocess.DEVNULL,
    )
    listener.close()  # only the master holds it now
    try:
        wait_for(lambda: len(re.findall("ready in", log.read_text())) >= 2, 15, what="ready")
        assert f"Listening at: http://127.0.0.1:{port} (fd://3)" in log.read_text()
        assert http_get(port, "/hi") == (200, b"hello from /hi")
        assert "127.0.0.1:8000" not in log.read_text()  # nothing else was bound
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_max_requests_recycles_without_failures(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--max-requests", "5",
                     "--max-requests-jitter", "2")
    master.wait_ready(1)
    pids = set()
    deadline = time.monotonic() + 15
    for _ in range(300):  # bounded: 300 requests or 15 s
        status, body = master.get("/pid")
        assert status == 200
        pids.add(body)
        if len(pids) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(pids) >= 3, master.log()
    assert "served" in master.log() and "recycling" in master.log()


def test_max_worker_memory_recycles_gracefully(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--max-worker-memory", "150M",
                     "--memory-check-interval", "0.1")
    """reliability.md A5: the leaking worker is replaced gracefully: a request in flight on it
    completes, and a request loop running meanwhile sees no failure."""
    master.wait_ready(1)
    (first,) = master.workers()
    assert master.get("/leak?mb=200")[0] == 200
    slow: list[object] = []
    thread = threading.Thread(target=lambda: slow.append(http_get(master.port, "/slow?s=1")))
    thread.start()
    load = LoadLoop(master.port, threads=1, max_requests=3000, max_seconds=15)
    try:
        master.wait_log(r"uses \d+ MiB \(limit 150 MiB\); recycling", timeout=10)
        wait_for(lambda: first not in master.workers() and len(master.workers()) == 1, 10,
                 what="the leaking worker to be replaced")
    finally:
        load.stop()
        thread.join(10)
    assert slow == [(200, b"slow done")]
    assert load.failures == [] and load.ok > 0
    assert master.get("/pid")[1] != str(first).encode()


def test_max_worker_lifetime(tricorn) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--max-worker-lifetime", "0.5")
    master.wait_ready(3, timeout=15)
    assert "reached its lifetime" in master.log()
    assert master.get("/x")[0] == 200


def test_usr1_reopens_log_files(tricorn, tmp_path: Path) -> None:
    master = tricorn("-w", "1", "-b", "127.0.0.1:0")
    master.wait_ready(1)
    port = master.port
    rotated = master.log_path.with_suffix(".1")
    master.log_path.rename(rotated)
    master.send(signal.SIGUSR1)
    wait_for(master.log_path.exists, 5, what="a new log file")
    master.send(signal.SIGTTIN)
    master.wait_log("Workers: 1 -> 2")
    assert "Handling signal: usr1" in rotated.read_text()
    assert http_get(port, "/x")[0] == 200


def test_status_endpoints(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", "--status-bind", "127.0.0.1:0")
    status_port = int(master.wait_log(r"Status at: http://127\.0\.0\.1:(\d+)")[0].group(1))
    master.wait_ready(2)
    for _ in range(5):
        master.get("/x")
    assert http_get(status_port, "/livez") == (200, b"ok\n")
    code, body = http_get(status_port, "/readyz")
    assert code == 200 and json.loads(body)["workers_ready"] == 2
    code, body = http_get(status_port, "/metrics")
    text = body.decode()
    assert code == 200
    assert 'tricorn_workers{state="ready"} 2' in text
    assert "tricorn_requests_total 5" in text
    assert 'tricorn_request_duration_seconds_bucket{le="+Inf"} 5' in text
    assert re.search(r'tricorn_worker_rss_bytes\{pid="\d+"\} \d+', text)
    assert "tricorn_listen_backlog{" in text
    assert http_get(status_port, "/nope")[0] == 404
    master.send(signal.SIGWINCH)  # no workers: not ready
    wait_for(lambda: http_get(status_port, "/readyz")[0] == 503, 5, what="readyz 503")
    assert http_get(status_port, "/livez")[0] == 200


def test_tricornctl(tricorn, tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--control-socket", str(path))
    master.wait_ready(1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def ctl(*args: str) -> dict:  # type: ignore[type-arg]
        out = subprocess.run([sys.executable, "-m", "tricorn.arbiter.ctl", "-s", str(path), *args],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr + out.stdout
        return json.loads(out.stdout)

    assert ctl("stats")["workers_wanted"] == 1
    assert ctl("add", "2")["workers_wanted"] == 3
    master.wait_ready(3)
    workers = ctl("workers")["workers"]
    assert len(workers) == 3 and {w["state"] for w in workers} == {"ready"}
    assert ctl("config")["config"]["workers"]["value"] == 1
    assert ctl("remove")["workers_wanted"] == 2
    assert ctl("reload")["ok"] is True
    master.wait_log("Reload complete", timeout=15)
    assert ctl("shutdown")["ok"] is True
    assert master.wait_exit(10) == 0
    assert not path.exists()


def test_pidfile_and_env(tricorn, tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "t.pid"
    pidfile.parent.mkdir()
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "-p", str(pidfile), "-e", "A_B=c d")
    master.wait_ready(1)
    assert int(pidfile.read_text()) == master.pid
    assert master.get("/env?name=A_B") == (200, b"c d")
    master.send(signal.SIGTERM)
    master.wait_exit(10)
    assert not pidfile.exists()


def test_check_config_and_print_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRICORN_")}
    env["PYTHONPATH"] = str(SUPPORT)
    base = [sys.executable, "-m", "tricorn.arbiter", "-k", "testworker:TestWorker"]
    ok = subprocess.run([*base, "--check-config", "apps:app"], cwd=SUPPORT, env=env,
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and "config ok" in ok.stdout
    bad = subprocess.run([*base, "--check-config", "import_fails:app"], cwd=SUPPORT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 4 and "fails at import" in bad.stderr
    printed = subprocess.run([*base, "-w", "3", "--print-config", "apps:app"], cwd=SUPPORT,
                             env=env, capture_output=True, text=True, timeout=30)
    assert printed.returncode == 0
    assert re.search(r"^workers\s+= 3\s+# command line$", printed.stdout, re.M)
    usage = subprocess.run([*base, "-w", "lots", "apps:app"], cwd=SUPPORT, env=env,
                           capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "workers" in usage.stderr


def test_web_concurrency_default(tricorn) -> None:
    master = tricorn("-b", "127.0.0.1:0", env={"WEB_CONCURRENCY": "3"})
    master.wait_ready(3)
    assert len(master.workers()) == 3
    time.sleep(0.1)


def test_sd_notify_ready_and_stopping(tricorn, tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        master = tricorn("-w", "2", "-b", "127.0.0.1:0", env={"NOTIFY_SOCKET": path})
        messages: list[str] = []

        def receive_until(word: str) -> None:
            while not any(word in m for m in messages):
                messages.append(sock.recv(4096).decode())

        receive_until("READY=1")
        assert master.ready_count() == 2  # READY only once every worker is ready
        assert any(f"MAINPID={master.pid}" in m for m in messages)
        master.send(signal.SIGHUP)
        receive_until("RELOADING=1")
        master.send(signal.SIGTERM)
        receive_until("STOPPING=1")
        master.wait_exit(10)
    finally:
        sock.close()


def test_reuse_port_workers_have_their_own_sockets(tricorn) -> None:
    master = tricorn("-w", "2", "-b", "127.0.0.1:0", "--reuse-port")
    master.wait_ready(2)
    pids: set[bytes] = set()
    for _ in range(200):  # bounded; the kernel hashes each new connection to one of the sockets
        pids.add(master.get("/pid")[1])
        if len(pids) == 2:
            break
    assert len(pids) == 2

    def listening_sockets(pid: int) -> int:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:"):
                inodes.add(target)
        listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
        listen_inodes = {f"socket:[{line.split()[9]}]" for line in listening
                         if line.split()[3] == "0A"}
        return len(inodes & listen_inodes)

    for pid in master.workers():  # its own listening socket besides the shared one
        assert listening_sockets(pid) == 2
    migrate = Path("/proc/sys/net/ipv4/tcp_migrate_req")
    if migrate.exists() and migrate.read_text().strip() == "0":  # warned: resets on worker stop
        assert "net.ipv4.tcp_migrate_req=1" in master.log()


def test_user_and_group_drop_in_workers(tricorn) -> None:
    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to switch users")
    import grp
    import pwd

    user = pwd.getpwnam("nobody")
    group = grp.getgrgid(user.pw_gid).gr_name
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "-u", "nobody", "-g", group)
    master.wait_ready(1)
    (pid,) = master.workers()
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{user.pw_uid}\s", status, re.M)
    assert re.search(rf"^Gid:\s+{user.pw_gid}\s", status, re.M)
    assert master.get("/x")[0] == 200
    master.send(signal.SIGHUP)  # the master (still root) can reload and signal its workers
    master.wait_log("Reload complete", timeout=15)


def test_reload_on_code_change(tricorn, tmp_path: Path) -> None:
    module = tmp_path / "devapp.py"
    module.write_text("def app(path):\n    return b'one'\n")
    master = tricorn("-w", "1", "-b", "127.0.0.1:0", "--reload", "--reload-interval", "0.1",
                     "--chdir", str(tmp_path), app="devapp:app",
                     env={"PYTHONDONTWRITEBYTECODE": "1"})
    master.wait_ready(1)
    assert master.get("/")[1] == b"one"
    time.sleep(0.2)
    module.write_text("def app(path):\n    return b'two!'\n")
    master.wait_log("devapp.py changed; restarting", timeout=10)
    master.wait_ready(2, timeout=10)
    assert master.get("/")[1] == b"two!"


def test_ipv6_and_unix_listeners(tricorn, tmp_path: Path) -> None:
    if not socket.has_ipv6:
        import pytest

        pytest.skip("no IPv6")
    path = tmp_path / "app.sock"
    master = tricorn("-w", "1", "-b", "[::1]:0", "-b", f"unix:{path}")
    port = int(master.wait_log(r"Listening at: http://\[::1\]:(\d+)")[0].group(1))
    master.wait_ready(1)
    assert http_get(port, "/six", host="::1") == (200, b"hello from /six")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b"GET /unix HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data.endswith(b"hello from /unix")
    master.send(signal.SIGTERM)
    master.wait_exit(10)
    assert not path.exists()  # the master created it, the master removes it


def test_unrelated_child_exiting_3_halts_nothing(tricorn, tmp_path: Path) -> None:
    """Gunicorn #2807: a hook's subprocess that exits 3 is not a worker boot failure."""
    config = tmp_path / "conf.py"
    config.write_text("import subprocess\n\n"
                      "def when_ready(server):\n"
                      "    server.helper = subprocess.Popen(['sh', '-c', 'sleep 0.3; exit 3'])\n")
    master = tricorn("-c", str(config), "-w", "1", "-b", "127.0.0.1:0")
    master.wait_ready(1)
    time.sleep(0.8)  # the helper has exited with 3 by now
    assert master.proc.poll() is None
    assert master.get("/x")[0] == 200
    assert "Shutting down" not in master.log()
