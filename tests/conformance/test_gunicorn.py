"""gunicorn's request corpus (tests/requests/valid and invalid), through our Connection.

Valid cases: the same requests (method, raw target, version, fields, body, trailers) as gunicorn,
modulo gunicorn's default `header_map=drop`, which removes field names containing "_" before the
application sees them. That is a WSGI policy of the server (it reads the parser's
F_UNDERSCORE_NAME flag); the parser keeps every field, so the comparison drops them on our side and
checks the flag. Invalid cases: a rejection (or a close inside the bad request at EOF) before the bad
request completes, for a reason that fits gunicorn's failure category. Cases whose config maps onto
ParserLimits run with those limits; the others are in deviations.NOT_APPLICABLE.
"""

from __future__ import annotations

from typing import Any


def test_gunicorn_valid(gunicorn_valid: Any, h: Any) -> None:
    h.evaluate(gunicorn_valid)


def test_gunicorn_invalid(gunicorn_invalid: Any, h: Any) -> None:
    h.evaluate(gunicorn_invalid)
