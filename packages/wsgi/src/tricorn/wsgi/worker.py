"""The worker classes the arbiter resolves by name (`tricorn.core.worker.WORKER_CLASSES`):
``sync`` -> `SyncWorker`, ``gthread`` -> `ThreadWorker`. Both take a
`tricorn.core.worker.WorkerContext` and return an exit code from ``run()``."""

from __future__ import annotations

from .gthread import ThreadWorker
from .sync import SyncWorker

__all__ = ["SyncWorker", "ThreadWorker"]
