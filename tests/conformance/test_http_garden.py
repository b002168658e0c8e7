"""HTTP Garden's server bugs (request smuggling and friends), through our Connection.

Each `expected` value of the corpus maps to one check in harness.check_http_garden; a value the
harness does not know fails the case, so a new kind of expectation cannot pass unnoticed.
"""

from __future__ import annotations

from typing import Any


def test_http_garden(garden_case: Any, h: Any) -> None:
    h.evaluate(garden_case)
