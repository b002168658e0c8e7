"""Fixtures of the lab's tests.

- The repository root goes on sys.path, so `import lab` works however pytest was started.
- `smoke_folder` is a real result folder produced on the development machine by
  `python -m lab run --study smoke --quick --deployments 'tricorn-sync-w2,tricorn-hybrid-w2,uvicorn,wsgiref'`
  (committed under data/smoke without its report/); `smoke_copy` is a private copy a test may change.
- These tests need only what requirements-dev.txt installs (matplotlib for the report); the smoke run
  test needs Locust and is skipped, with that reason, when Locust is not importable.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def smoke_folder() -> Path:
    return DATA / "smoke"


@pytest.fixture
def smoke_copy(tmp_path: Path) -> Path:
    target = tmp_path / "smoke"
    shutil.copytree(DATA / "smoke", target)
    return target
