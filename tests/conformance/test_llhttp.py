"""llhttp's request tests (test/request/*.md), through our Connection.

Strict cases: complete vs error, and each message's method, url, version, fields (trailing OWS, which
llhttp keeps, stripped; trailer fields after the header fields, as llhttp reports them), body,
completeness and framing flags. An error must come no earlier than llhttp's completed messages and no
later than its last dispatched head. Upgrade / CONNECT cases: the head (and an upgrade's body) is
parsed and the bytes after llhttp's upgrade offset are handed over untouched. Lenient cases run with
the leniency we offer as an option (obs-fold: unfold); the rest are listed in deviations.py as
"lenient case, rejected by design".
"""

from __future__ import annotations

from typing import Any


def test_llhttp_strict(llhttp_strict: Any, h: Any) -> None:
    h.evaluate(llhttp_strict)


def test_llhttp_lenient(llhttp_lenient: Any, h: Any) -> None:
    h.evaluate(llhttp_lenient)
