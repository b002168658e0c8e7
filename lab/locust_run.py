"""Run Locust headless for one cell: a master plus N worker processes (its distributed mode), or one
local process when N is 0, writing `--csv PREFIX --csv-full-history` into the cell folder.

Bounds: Locust stops itself after `-t` (or when the step shape ends); the lab waits at most
`run_time_s + STARTUP_GRACE_S + STOP_GRACE_S` and then SIGKILLs the Locust process groups. The master
binds its worker port on loopback only and waits at most `EXPECT_WORKERS_WAIT_S` for its workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab.net import free_port

STARTUP_GRACE_S = 40.0
STOP_GRACE_S = 15.0
EXPECT_WORKERS_WAIT_S = 30
STOP_TIMEOUT_S = 2


@dataclass(frozen=True)
class LocustPlan:
    """What one Locust run does."""

    locustfile: str  # relative to the repository root (the cwd of the Locust processes)
    user_class: str
    host_url: str
    users: int
    spawn_rate: float
    run_time_s: float
    workers: int  # 0: one local process, no master/worker split
    csv_prefix: Path
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    shaped: bool = False  # a load shape in the locustfile drives users and stops the run


def _common(plan: LocustPlan) -> list[str]:
    return ["-f", plan.locustfile, "--loglevel", "WARNING"]


def master_argv(plan: LocustPlan, python: str, master_port: int) -> list[str]:
    """The headless master (or the single local process when `plan.workers` is 0)."""
    argv = [
        python,
        "-m",
        "locust",
        *_common(plan),
        "--headless",
        "--host",
        plan.host_url,
        "--csv",
        str(plan.csv_prefix),
        "--csv-full-history",
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
    ]
    if not plan.shaped:  # a shape stops the run itself; the lab's deadline bounds it either way
        argv += [
            "-t",
            f"{max(1, round(plan.run_time_s))}s",
            "-u",
            str(plan.users),
            "-r",
            f"{plan.spawn_rate:g}",
        ]
    if plan.workers > 0:
        argv += [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(plan.workers),
            "--expect-workers-max-wait",
            str(EXPECT_WORKERS_WAIT_S),
        ]
    return argv + [plan.user_class]


def worker_argv(plan: LocustPlan, python: str, master_port: int) -> list[str]:
    """One worker process connecting to the master on loopback."""
    return [
        python,
        "-m",
        "locust",
        *_common(plan),
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(master_port),
        plan.user_class,
    ]


@dataclass
class LocustOutcome:
    """How the run ended."""

    master_exit: int | None
    worker_exits: list[int | None]
    timed_out: bool
    seconds: float


class LocustRun:
    """The processes of one Locust run."""

    def __init__(self, plan: LocustPlan, python: str, cwd: Path) -> None:
        self.plan = plan
        self.python = python
        self.cwd = cwd
        self.master_port = free_port() if plan.workers > 0 else 0
        self.master_command = master_argv(plan, python, self.master_port)
        self.worker_commands = [worker_argv(plan, python, self.master_port) for _ in range(plan.workers)]
        self.master: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started = 0.0

    def env_for(self, index: int) -> dict[str, str]:
        """Environment of process `index` (the master is -1): the plan's LAB_* plus its own index."""
        python_path = str(self.cwd) + (
            os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""
        )
        return {
            **os.environ,
            **self.plan.env,
            "LAB_WORKER_INDEX": str(max(index, 0)),
            "PYTHONPATH": python_path,
        }

    def _spawn(self, argv: list[str], index: int, log_name: str) -> subprocess.Popen[bytes]:
        self.plan.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.plan.log_dir / log_name, "wb") as log:
            return subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env_for(index),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def start(self) -> None:
        self.started = time.monotonic()
        self.master = self._spawn(self.master_command, -1, "locust-master.log")
        for index, argv in enumerate(self.worker_commands):
            self.workers.append(self._spawn(argv, index, f"locust-worker-{index}.log"))

    def pids(self) -> list[tuple[int, str]]:
        """(pid, role) of every Locust process."""
        out: list[tuple[int, str]] = []
        if self.master is not None:
            out.append((self.master.pid, "locust-master" if self.workers else "locust-local"))
        out += [(worker.pid, "locust-worker") for worker in self.workers]
        return out

    def running(self) -> bool:
        return self.master is not None and self.master.poll() is None

    def _kill_all(self) -> None:
        for process in [self.master, *self.workers]:
            if process is not None and process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def wait(self, tick: Callable[[], None] | None = None, tick_s: float = 1.0) -> LocustOutcome:
        """Wait for the master to finish (calling `tick` every `tick_s`), then for the workers."""
        if self.master is None:
            raise RuntimeError("LocustRun.wait() before start()")
        deadline = self.started + self.plan.run_time_s + STARTUP_GRACE_S + STOP_GRACE_S
        timed_out = False
        try:
            while self.master.poll() is None:
                if time.monotonic() > deadline:
                    timed_out = True
                    self._kill_all()
                    break
                if tick is not None:
                    tick()
                try:
                    self.master.wait(timeout=tick_s)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            self._kill_all()  # Ctrl-C or a bug in `tick`: leave no Locust process behind
            raise
        worker_deadline = time.monotonic() + 10.0
        for worker in self.workers:
            try:
                worker.wait(timeout=max(0.1, worker_deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self._kill_all()
        for process in [self.master, *self.workers]:
            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        return LocustOutcome(
            self.master.poll(), [w.poll() for w in self.workers], timed_out, time.monotonic() - self.started
        )
