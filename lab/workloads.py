"""Workloads: which Locust user class drives which endpoint, and what a workload needs.

Each workload names a user class of `lab/loadgen/locustfile.py` (the step profile uses
`lab/loadgen/stepfile.py`, which adds the step load shape). The definitions are data; the user classes
themselves live in `lab.loadgen.users` and are imported only by Locust.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCUSTFILE = "lab/loadgen/locustfile.py"
STEPFILE = "lab/loadgen/stepfile.py"


@dataclass(frozen=True)
class Workload:
    """One kind of traffic."""

    name: str
    user_class: str
    description: str
    warmup_path: str = "/"
    websocket: bool = False  # needs a server with WebSocket support
    needs_upstream: bool = False  # needs the slow upstream service
    step: bool = False  # driven by the step load shape (saturation search)
    wrk_path: str | None = None  # path for a raw-throughput wrk cell, when wrk makes sense

    @property
    def locustfile(self) -> str:
        return STEPFILE if self.step else LOCUSTFILE


WORKLOADS: tuple[Workload, ...] = (
    Workload("hello", "HelloUser", "GET / → 28-byte text; the server's own overhead", "/", wrk_path="/"),
    Workload(
        "hello-noretry",
        "NoRetryHelloUser",
        "GET / over one keep-alive connection per user, never retried: what a fault really loses",
        "/",
    ),
    Workload(
        "json", "JsonUser", "GET /json → ~2 KB of JSON serialised per request", "/json", wrk_path="/json"
    ),
    Workload("download", "DownloadUser", "GET /download → 64 KiB body", "/download", wrk_path="/download"),
    Workload("upload", "UploadUser", "POST /upload with a 1 MiB body, read in 64 KiB chunks", "/"),
    Workload(
        "io",
        "IoUser",
        "GET /io → the app calls a slow upstream (httpx) on loopback",
        "/io",
        needs_upstream=True,
    ),
    Workload(
        "cpu", "CpuUser", "GET /cpu → 20k rounds of pure-Python arithmetic (a few ms) holding the GIL", "/cpu"
    ),
    Workload(
        "websocket", "WebSocketUser", "WebSocket /ws: send 64 bytes, wait for the echo", "/", websocket=True
    ),
    Workload(
        "mixed",
        "MixedUser",
        "a realistic mix with think time: hello 30%, json 30%, io 15%, download 10%, cpu 10%, "
        "64 KiB upload 5%",
        "/json",
        needs_upstream=True,
    ),
    Workload(
        "ramp",
        "RampUser",
        "GET /json while users grow step by step (finds the saturation point)",
        "/json",
        step=True,
    ),
)


def by_name() -> dict[str, Workload]:
    """Index of the workloads by name."""
    return {workload.name: workload for workload in WORKLOADS}
