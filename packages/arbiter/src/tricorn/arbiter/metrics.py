"""``/metrics``: the master's view of its workers in the Prometheus text format (0.0.4).

Everything comes from the master's own records and the workers' heartbeat pages: no worker is
asked anything, so a scrape costs the master a few reads of shared memory and never blocks.
Counters of exited workers are folded into the totals at reap time, so ``tricorn_requests_total``
never goes down when a worker is replaced.

Metrics: ``tricorn_workers{state}``, ``tricorn_workers_target``, ``tricorn_worker_restarts_total
{cause}``, ``tricorn_requests_total``, ``tricorn_requests_in_flight``,
``tricorn_request_duration_seconds`` (histogram), ``tricorn_worker_rss_bytes{pid}``,
``tricorn_worker_requests{pid}``, ``tricorn_listen_backlog{listener}`` and
``tricorn_listen_backlog_max{listener}`` (Linux, TCP), ``tricorn_generation``,
``tricorn_master_start_time_seconds``.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

from tricorn.core.heartbeat import DURATION_BUCKETS

from . import osutil

if TYPE_CHECKING:
    from .arbiter import Arbiter

__all__ = ["listen_backlog", "render_metrics"]

_TCP_INFO = getattr(socket, "TCP_INFO", None)
_UNACKED = struct.Struct("=II")  # tcpi_unacked, tcpi_sacked at offset 24 of struct tcp_info


def listen_backlog(sock: socket.socket) -> tuple[int, int] | None:
    """(queued, max) connections waiting to be accepted on a listening TCP socket (Linux)."""
    if _TCP_INFO is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < 32:
        return None
    queued, maximum = _UNACKED.unpack_from(info, 24)
    return queued, maximum


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(arbiter: Arbiter) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    states = {"booting": 0, "ready": 0, "retiring": 0}
    requests = arbiter.retired_requests
    duration_sum = arbiter.retired_duration_sum
    buckets = list(arbiter.retired_buckets) or [0] * (len(DURATION_BUCKETS) + 1)
    in_flight = 0
    per_worker: list[tuple[int, int | None, int]] = []
    for worker in arbiter.workers.values():
        states[worker.state] += 1
        if worker.slot.closed:
            continue
        reading = worker.slot.read()
        requests += reading.requests
        duration_sum += reading.duration_sum
        in_flight += max(0, reading.in_flight)
        for i, count in enumerate(reading.buckets):
            buckets[i] += count
        rss = worker.rss if worker.rss is not None else osutil.rss_bytes(worker.pid)
        per_worker.append((worker.pid, rss, reading.requests))

    metric("tricorn_workers", "gauge", "Worker processes by state.")
    for state, count in states.items():
        lines.append(f'tricorn_workers{{state="{state}"}} {count}')
    metric("tricorn_workers_target", "gauge", "The number of workers wanted.")
    lines.append(f"tricorn_workers_target {arbiter.num_workers}")
    metric("tricorn_worker_restarts_total", "counter", "Workers replaced, by cause.")
    for cause in ("crash", "timeout", "boot_failure", "reload", "max_requests", "memory",
                  "lifetime"):
        lines.append(f'tricorn_worker_restarts_total{{cause="{cause}"}} '
                     f"{arbiter.restarts.get(cause, 0)}")
    metric("tricorn_requests_total", "counter", "Requests completed by all workers.")
    lines.append(f"tricorn_requests_total {requests}")
    metric("tricorn_requests_in_flight", "gauge", "Requests being handled now.")
    lines.append(f"tricorn_requests_in_flight {in_flight}")
    metric("tricorn_request_duration_seconds", "histogram", "Request handling time.")
    cumulative = 0
    for bound, count in zip(DURATION_BUCKETS, buckets[:-1], strict=True):
        cumulative += count
        lines.append(f'tricorn_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
    cumulative += buckets[-1]
    lines.append(f'tricorn_request_duration_seconds_bucket{{le="+Inf"}} {cumulative}')
    lines.append(f"tricorn_request_duration_seconds_sum {duration_sum:.6f}")
    lines.append(f"tricorn_request_duration_seconds_count {cumulative}")
    metric("tricorn_worker_rss_bytes", "gauge", "Resident memory of each worker.")
    for pid, rss, _ in per_worker:
        if rss is not None:
            lines.append(f'tricorn_worker_rss_bytes{{pid="{pid}"}} {rss}')
    metric("tricorn_worker_requests", "gauge", "Requests completed by each live worker.")
    for pid, _, count in per_worker:
        lines.append(f'tricorn_worker_requests{{pid="{pid}"}} {count}')
    backlog_lines: list[str] = []
    max_lines: list[str] = []
    for listener in arbiter.LISTENERS:
        backlog = listen_backlog(listener.sock)
        if backlog is None:
            continue
        label = _label(listener.url())
        backlog_lines.append(f'tricorn_listen_backlog{{listener="{label}"}} {backlog[0]}')
        max_lines.append(f'tricorn_listen_backlog_max{{listener="{label}"}} {backlog[1]}')
    if backlog_lines:
        metric("tricorn_listen_backlog", "gauge", "Connections waiting to be accepted.")
        lines.extend(backlog_lines)
        metric("tricorn_listen_backlog_max", "gauge", "The listen queue's capacity.")
        lines.extend(max_lines)
    metric("tricorn_generation", "gauge", "Configuration generation (grows on each reload).")
    lines.append(f"tricorn_generation {arbiter.generation.number if arbiter.generation else 0}")
    metric("tricorn_master_start_time_seconds", "gauge", "When the master started (Unix time).")
    lines.append(f"tricorn_master_start_time_seconds {arbiter.started_at:.3f}")
    return "\n".join(lines) + "\n"
