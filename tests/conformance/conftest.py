"""Fixtures and hooks for the external conformance corpora (see harness.py for what a case means).

- The cases are parametrized per corpus and kind (`gunicorn_valid`, `gunicorn_invalid`,
  `llhttp_strict`, `llhttp_lenient`, `garden_case`), with the case names as ids, so the pass count of
  each corpus is visible.
- The corpus folder is $TRICORN_CONFORMANCE_DIR, else <repo>/../shared/conformance. When it is absent
  the tests are skipped with that reason, except when $CI is set: then they fail, because CI must run
  them.
- At the end of the session a pass-count summary per corpus is written to the terminal.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import tricorn_conformance_harness as harness  # loaded by tests/conftest.py

# fixture name -> (corpus, kind), one per harness.KINDS
CASE_FIXTURES = dict(zip(
    ("gunicorn_valid", "gunicorn_invalid", "llhttp_strict", "llhttp_lenient", "garden_case"),
    harness.KINDS, strict=True))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_corpus() -> None:
    """Skip (or, in CI, fail) when the corpus folder is not there."""
    reason = harness.corpus_missing_reason()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"{reason}; CI must run the conformance corpora", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def h() -> Any:
    """The harness module."""
    return harness


@pytest.fixture(scope="session")
def corpus_present() -> None:
    require_corpus()


@pytest.fixture
def corpus_guard() -> Any:
    """require_corpus itself, to test the skip-or-fail rule."""
    return require_corpus


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, (corpus, kind) in CASE_FIXTURES.items():
        if name not in metafunc.fixturenames:
            continue
        if harness.corpus_missing_reason() is not None:
            metafunc.parametrize(name, [None], ids=["corpus-absent"], indirect=True)
            continue
        cases = [c for c in harness.load(corpus) if c.kind == kind]
        metafunc.parametrize(name, cases, ids=[c.test_id for c in cases], indirect=True)


def _case(request: pytest.FixtureRequest) -> Any:
    case = request.param
    if case is None:
        require_corpus()
    request.node.user_properties.append(("conformance_case", case.key))
    return case


@pytest.fixture
def gunicorn_valid(request: pytest.FixtureRequest) -> Any:
    return _case(request)


@pytest.fixture
def gunicorn_invalid(request: pytest.FixtureRequest) -> Any:
    return _case(request)


@pytest.fixture
def llhttp_strict(request: pytest.FixtureRequest) -> Any:
    return _case(request)


@pytest.fixture
def llhttp_lenient(request: pytest.FixtureRequest) -> Any:
    return _case(request)


@pytest.fixture
def garden_case(request: pytest.FixtureRequest) -> Any:
    return _case(request)


# ------------------------------------------------------------------------------ summary

_outcomes: dict[str, bool] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    key = dict(report.user_properties).get("conformance_case")
    if key is None:
        return
    if report.when == "call" or report.failed:
        _outcomes[str(key)] = _outcomes.get(str(key), True) and report.passed


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _outcomes or harness.corpus_missing_reason() is not None:
        return
    cases = {c.key: c for c in harness.load_all()}
    tallies = harness.tally((cases[k], ok) for k, ok in _outcomes.items() if k in cases)
    terminalreporter.write_sep("-", "conformance corpora: pass counts")
    for line in harness.summary_lines(tallies):
        terminalreporter.write_line(line)
