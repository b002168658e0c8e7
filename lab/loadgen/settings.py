"""The LAB_* environment that the runner passes to every Locust process, read in one place.

LAB_SEED, LAB_WORKER_INDEX      seed of this process's `random` (seed * 1000 + index)
LAB_UPLOAD_BYTES                size of the upload workload's body (default 1 MiB)
LAB_PERCENTILE_WINDOW_S         window of Locust's "current" percentiles in the history CSV (default 2)
LAB_STEP_START, LAB_STEP_USERS, LAB_STEP_S, LAB_STEP_MAX, LAB_STEP_USER_RPS
                                the step load shape (see lab.studies.StepProfile)
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class LoadgenSettings:
    """Settings of one Locust process."""

    seed: int
    worker_index: int
    upload_bytes: int
    percentile_window_s: int
    step_start: int
    step_users: int
    step_s: float
    step_max: int
    step_user_rps: float

    @property
    def process_seed(self) -> int:
        return self.seed * 1000 + self.worker_index


def from_environ() -> LoadgenSettings:
    """Read the LAB_* variables (defaults for anything unset)."""
    return LoadgenSettings(
        seed=_int("LAB_SEED", 1),
        worker_index=_int("LAB_WORKER_INDEX", 0),
        upload_bytes=_int("LAB_UPLOAD_BYTES", 1024 * 1024),
        percentile_window_s=_int("LAB_PERCENTILE_WINDOW_S", 2),
        step_start=_int("LAB_STEP_START", 8),
        step_users=_int("LAB_STEP_USERS", 8),
        step_s=_float("LAB_STEP_S", 10.0),
        step_max=_int("LAB_STEP_MAX", 96),
        step_user_rps=_float("LAB_STEP_USER_RPS", 50.0),
    )
