"""Fixtures shared by the core tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Undo what a test did to the ``tricorn`` logger (handlers added, level, propagation)."""
    logger = logging.getLogger("tricorn")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
