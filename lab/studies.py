"""Studies: which deployments × workloads × scenarios to run, with how much load, for how long.

A study is data; `Study.quick()` shrinks it to seconds per cell for smoke runs (CI). Deployment
selectors are fnmatch patterns over catalogue names, where `{n}` stands for the N of `--workers`.

Scenarios: `steady` (Locust only), `wrk` (a raw-throughput cell driven by wrk instead of Locust, when
wrk is installed), and the faults injected during load — `kill9` (SIGKILL one worker), `hup` (SIGHUP the
master: reload), `slow-clients` (connections that trickle a request head byte by byte).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SCENARIOS = ("steady", "wrk", "kill9", "hup", "slow-clients")
FAULT_SCENARIOS = ("kill9", "hup", "slow-clients")


@dataclass(frozen=True)
class StepProfile:
    """Users start at `start_users` and grow by `step_users` every `step_s` up to `max_users`; each
    user paces itself at `user_rps` requests/s, so the offered load grows linearly with the steps."""

    start_users: int = 40
    step_users: int = 40
    step_s: float = 10.0
    max_users: int = 400
    user_rps: float = 10.0

    @property
    def steps(self) -> int:
        return (self.max_users - self.start_users) // self.step_users + 1

    @property
    def duration_s(self) -> float:
        return self.steps * self.step_s


@dataclass(frozen=True)
class WrkSettings:
    """wrk's threads and connections for raw-throughput cells (`-t`, `-c`)."""

    threads: int = 1
    connections: int = 64


@dataclass(frozen=True)
class Study:
    """A named plan of cells and the load settings shared by all of them."""

    name: str
    description: str
    deployments: tuple[str, ...]
    workloads: tuple[str, ...]
    scenarios: tuple[str, ...] = ("steady",)
    users: int = 32
    spawn_rate: float = 32.0
    duration_s: float = 20.0
    locust_workers: int = 1
    threads: int = 8
    upstream_delay_ms: int = 50
    step: StepProfile = field(default_factory=StepProfile)
    p99_threshold_ms: float = 100.0
    fault_at: float = 0.4
    slow_clients: int = 50
    wrk: WrkSettings = field(default_factory=WrkSettings)
    baseline: str = "gunicorn-uvicorn-w{n}"
    sample_interval_s: float = 0.5
    quick_mode: bool = False

    def quick(self) -> Study:
        """Seconds per cell: the smoke-test version of this study."""
        return dataclasses.replace(
            self,
            users=min(self.users, 8),
            spawn_rate=min(self.spawn_rate, 8.0),
            duration_s=min(self.duration_s, 3.0 if not set(self.scenarios) & set(FAULT_SCENARIOS) else 6.0),
            step=StepProfile(
                start_users=2, step_users=4, step_s=2.0, max_users=10, user_rps=self.step.user_rps
            ),
            slow_clients=min(self.slow_clients, 10),
            quick_mode=True,
        )


ALL_HTTP = ("hello", "json", "download", "upload", "io", "cpu", "websocket", "mixed")

STUDIES: dict[str, Study] = {
    "compare": Study(
        name="compare",
        description="Every deployment on every workload at a fixed number of users, plus raw wrk cells: "
        "sync vs threaded vs async vs hybrid, tricorn vs peers.",
        deployments=("tricorn-*", "gunicorn-*", "uvicorn*", "granian-*", "wsgiref"),
        workloads=ALL_HTTP,
        scenarios=("steady", "wrk"),
    ),
    "saturation": Study(
        name="saturation",
        description="Users grow step by step on /json until p99 passes the threshold: the throughput "
        "each deployment sustains before latency breaks down.",
        deployments=(
            "tricorn-*-w{n}",
            "tricorn-asgi",
            "tricorn-wsgi-threads",
            "gunicorn-*-w{n}",
            "uvicorn",
            "granian-*-w{n}",
        ),
        workloads=("ramp",),
    ),
    "smoke": Study(
        name="smoke",
        description="Every kind of cell once, in about two minutes with --quick: steady Locust load, a raw "
        "wrk cell, a WebSocket cell, a step profile and a kill -9 fault, on a few deployments. "
        "CI runs it with --quick.",
        deployments=(
            "tricorn-sync-w{n}",
            "tricorn-hybrid-w{n}",
            "tricorn-asgi",
            "gunicorn-sync-w{n}",
            "uvicorn",
            "wsgiref",
        ),
        workloads=("hello", "websocket", "ramp"),
        scenarios=("steady", "wrk", "kill9"),
        baseline="wsgiref",
    ),
    "faults": Study(
        name="faults",
        description="Faults during steady load: SIGKILL one worker, SIGHUP reload, slow clients holding "
        "connections. The report shows the dip in throughput and the failures over time.",
        deployments=("tricorn-*-w{n}", "gunicorn-*-w{n}", "uvicorn-w{n}", "granian-*-w{n}"),
        workloads=("hello-noretry",),
        scenarios=("kill9", "hup", "slow-clients"),
        duration_s=20.0,
        users=16,
        spawn_rate=16.0,
    ),
}


def get(name: str) -> Study:
    """The study called `name`; KeyError lists the known ones."""
    try:
        return STUDIES[name]
    except KeyError:
        raise KeyError(f"unknown study {name!r}; known: {', '.join(sorted(STUDIES))}") from None
