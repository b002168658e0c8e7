"""One process per container: tricorn-wsgi / tricorn-asgi alone, the orchestrator doing process
management. SIGTERM drains within the grace period, PID 1 reaps what its app forks, PORT and
WEB_CONCURRENCY are read, and the access log goes to stdout as JSON lines when asked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from deploy_harness import children, free_port, get_json, proc_state, request, wait_for

SINGLE = {
    "tricorn-wsgi": "deploy_app:wsgi",
    "tricorn-asgi": "deploy_app:asgi",
}


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                              timeout=10, capture_output=True).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("command", list(SINGLE))
def test_port_from_the_environment(server, command: str) -> None:
    port = free_port()
    proc = server(command, SINGLE[command], env={"PORT": str(port)})
    proc.wait_http(("127.0.0.1", port))
    assert f"0.0.0.0:{port}" in proc.text()  # $PORT means every interface, as on Heroku / Cloud Run


@pytest.mark.parametrize("command", list(SINGLE))
def test_single_process_says_it_ignores_web_concurrency(server, command: str) -> None:
    port = free_port()
    proc = server(command, "-b", f"127.0.0.1:{port}", SINGLE[command], env={"WEB_CONCURRENCY": "3"})
    proc.wait_http(("127.0.0.1", port))
    assert "WEB_CONCURRENCY=3 asks for several processes" in proc.text()
    assert proc.workers() == []  # one process, no children


def test_arbiter_reads_port_and_web_concurrency(server) -> None:
    port = free_port()
    proc = server("tricorn", "-k", "asgi", "deploy_app:asgi",
                  env={"PORT": str(port), "WEB_CONCURRENCY": "3"})
    proc.wait_http(("127.0.0.1", port))
    wait_for(lambda: len(proc.workers()) == 3, 15, what="3 workers")


@pytest.mark.parametrize("command", list(SINGLE))
def test_sigterm_drains_in_flight_requests_then_exits_0(server, command: str) -> None:
    port = free_port()
    proc = server(command, "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", SINGLE[command])
    proc.wait_http(("127.0.0.1", port))
    result: list[object] = []
    slow = threading.Thread(target=lambda: result.append(
        request(("127.0.0.1", port), "/slow?s=1.5", timeout=10)))
    slow.start()
    time.sleep(0.4)  # the request is in the app
    started = time.monotonic()
    proc.send(signal.SIGTERM)
    slow.join(10)
    assert result and result[0][0] == 200, result  # type: ignore[index]
    assert proc.proc.wait(10) == 0
    took = time.monotonic() - started
    assert 0.8 < took < 5, took  # waited for the request, not for the whole grace period
    with pytest.raises(OSError):
        request(("127.0.0.1", port), "/info", timeout=1)


@pytest.mark.parametrize("command", list(SINGLE))
def test_sigterm_gives_up_after_the_grace_period(server, command: str) -> None:
    port = free_port()
    proc = server(command, "-b", f"127.0.0.1:{port}", "--graceful-timeout", "1", SINGLE[command])
    proc.wait_http(("127.0.0.1", port))
    slow = threading.Thread(target=lambda: _ignore(request, ("127.0.0.1", port), "/slow?s=20",
                                                    timeout=20), daemon=True)
    slow.start()
    time.sleep(0.4)
    started = time.monotonic()
    proc.send(signal.SIGTERM)
    proc.proc.wait(10)
    took = time.monotonic() - started
    assert took < 4, took  # within graceful_timeout (+ the loop's own slack), well before SIGKILL


def _ignore(func, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    try:
        func(*args, **kwargs)
    except OSError:
        pass


@pytest.mark.skipif(not _unshare_works(), reason="unshare --pid --fork --mount-proc not permitted here")
@pytest.mark.parametrize("command", list(SINGLE))
def test_pid_1_reaps_forked_children_and_stops_on_sigterm(server, command: str) -> None:
    port = free_port()
    proc = server(command, "-b", f"127.0.0.1:{port}", SINGLE[command],
                  prefix=["unshare", "--pid", "--fork", "--mount-proc"])
    proc.wait_http(("127.0.0.1", port))
    (init,) = wait_for(lambda: children(proc.pid), 5, what="the server under unshare")  # type: ignore[misc]
    for _ in range(5):
        info = get_json(("127.0.0.1", port), "/fork")
        assert info["pid"] == 1  # the server really is PID 1 of its namespace
    # Five orphans were re-parented to the server (PID 1) and exited; none may stay a zombie.
    time.sleep(0.5)
    orphans = children(init)
    assert orphans, "expected the exited orphans as (zombie) children of PID 1"
    wait_for(lambda: children(init) == [], 5, what="the orphans reaped")
    init_state = proc_state(init)
    assert init_state is not None
    os.kill(init, signal.SIGTERM)  # PID 1 gets only signals it handles: SIGTERM must be one
    assert proc.proc.wait(10) == 0


@pytest.mark.parametrize("command", list(SINGLE))
def test_json_access_log_on_stdout(server, tmp_path: Path, command: str) -> None:
    port = free_port()
    out = tmp_path / "stdout.log"
    with open(out, "wb") as stdout:
        proc = server(command, "-b", f"127.0.0.1:{port}", "--access-logfile", "-",
                      "--access-logformat", "json", SINGLE[command], stdout=stdout)
        proc.wait_http(("127.0.0.1", port))
        for i in range(3):
            get_json(("127.0.0.1", port), f"/info?n={i}")
        assert proc.stop() == 0
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    hits = [r for r in records if r.get("path") == "/info" and r.get("query", "").startswith("n=")]
    assert len(hits) == 3, records
    assert all(r["status"] == 200 and r["method"] == "GET" for r in hits)


# --- the documented container: docs/deploy/Dockerfile and docs/deploy/kubernetes.yaml -------------

def _json_array_after(text: str, key: str) -> list[str]:
    (line,) = [x for x in text.splitlines() if x.strip().startswith(key)]
    return json.loads(line.split(key, 1)[1].strip())


def test_documented_container_command_probes_and_stop_sequence(server, tmp_path: Path) -> None:
    from deploy_harness import DEPLOY_DOCS
    dockerfile = (DEPLOY_DOCS / "Dockerfile").read_text()
    manifest = (DEPLOY_DOCS / "kubernetes.yaml").read_text()
    cmd = _json_array_after(dockerfile, "CMD")
    assert _json_array_after(manifest, "command:") == cmd  # the image and the pod run the same

    # Timing: preStop sleep + graceful timeout < terminationGracePeriodSeconds.
    graceful = float(cmd[cmd.index("--graceful-timeout") + 1])
    grace_period = float(manifest.split("terminationGracePeriodSeconds:")[1].split()[0])
    sleep_line = [x for x in manifest.splitlines() if '"sleep"' in x][0]
    pre_stop_s = float(json.loads(sleep_line.split("command:", 1)[1].strip().rstrip("}"))[1])
    assert pre_stop_s + graceful < grace_period

    # Probes point at the status listener on the port the command binds.
    status_bind = cmd[cmd.index("--status-bind") + 1]
    assert status_bind.endswith(":9100") and "containerPort: 9100" in manifest
    assert "path: /readyz, port: status" in manifest and "path: /livez, port: status" in manifest

    # Run it (app and addresses made local; PORT and WEB_CONCURRENCY as the image sets them).
    env_lines = dockerfile.split("ENV", 1)[1].split("\n\n", 1)[0]
    assert "PORT=8000" in env_lines and "WEB_CONCURRENCY=2" in env_lines
    port, status_port = free_port(), free_port()
    args = [a.replace("0.0.0.0:9100", f"127.0.0.1:{status_port}") for a in cmd[1:-1]]
    out = tmp_path / "stdout.log"
    with open(out, "wb") as stdout:
        proc = server(cmd[0], *args, "deploy_app:asgi", stdout=stdout,
                      env={"PORT": str(port), "WEB_CONCURRENCY": "2"})
        status = ("127.0.0.1", status_port)
        wait_for(lambda: request(status, "/readyz", timeout=2)[0] == 200, 20, what="/readyz 200")
        assert request(status, "/livez")[0] == 200
        assert len(proc.workers()) == 2
        assert get_json(("127.0.0.1", port), "/info")["path_info"] == "/info"

        result: list[object] = []
        slow = threading.Thread(target=lambda: result.append(
            request(("127.0.0.1", port), "/slow?s=1.5", timeout=10)))
        slow.start()
        time.sleep(0.4)
        proc.send(signal.SIGTERM)  # what the kubelet sends after preStop
        readyz = wait_for(lambda: request(status, "/readyz", timeout=1)[0] == 503 or None, 1,
                          what="/readyz 503 while draining")
        assert readyz
        slow.join(10)
        assert result and result[0][0] == 200  # type: ignore[index]
        assert proc.proc.wait(graceful) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]
    assert any(r.get("path") == "/info" and r.get("status") == 200 for r in lines), lines
