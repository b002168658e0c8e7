"""Locustfile of the step profile: RampUser plus a load shape that adds users step by step.

The shape reads LAB_STEP_* (see lab.loadgen.settings) and stops the run after the last step, so each
step's users, throughput and windowed percentiles appear in the history CSV and the report can find the
saturation point.
"""

from __future__ import annotations

import math

from locust import LoadTestShape

from lab.loadgen.settings import from_environ
from lab.loadgen.users import RampUser  # noqa: F401 - Locust collects the user classes of this module


class StepShape(LoadTestShape):
    """start, start + step, ... up to max users, one step every step_s seconds; then stop."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        settings = from_environ()
        self.start = settings.step_start
        self.increment = settings.step_users
        self.step_s = settings.step_s
        self.steps = (settings.step_max - settings.step_start) // settings.step_users + 1

    def tick(self) -> tuple[int, float] | None:
        elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
        step = math.floor(elapsed / self.step_s)
        if step >= self.steps:
            return None
        users = self.start + step * self.increment
        return users, float(max(users, 1))
