"""The suite's closing line: what was skipped and why, and no skip that is not allowed.

A fresh clone must run every test. The only skips allowed are those whose cause is a tool this
machine lacks and whose reason says how to install it (``ALLOWED``); any other skip (a
parametrised test with an empty parameter set, a forgotten ``skipif``) fails the run.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.support.browser import MISSING as BROWSER_MISSING

ALLOWED = frozenset({BROWSER_MISSING})

_skipped: Counter[str] = Counter()


def _reason(report: pytest.TestReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count every skip by its reason (on the controller too, under xdist)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped[_reason(report)] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run on a skip that is not allowed."""
    if hasattr(session.config, "workerinput"):
        return
    if set(_skipped) - ALLOWED and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    """Print the closing line, after pytest's own summary."""
    if hasattr(config, "workerinput"):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    if not _skipped:
        reporter.write_line("Skipped: nothing.")
        return
    parts = [f"{count} because {reason}" for reason, count in sorted(_skipped.items())]
    reporter.write_line(f"Skipped: {'; '.join(parts)}.")
    unexpected = sorted(set(_skipped) - ALLOWED)
    if unexpected:
        reporter.write_line(
            "FAILED: a fresh clone must run every test; unexpected skips: " + "; ".join(unexpected),
            red=True,
        )
