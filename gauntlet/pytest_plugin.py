"""pytest plugin shared by tests/, sql_tests/, e2e/ and chaos/: the PostgreSQL fixtures,
SIGTERM-as-Ctrl-C, and progress events for the main job's live view."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gauntlet import events, lifecycle
from gauntlet.pg import Harness, open_harness
from gauntlet.supervise import Supervisor

VERDICTS = {"passed": "pass", "failed": "fail", "skipped": "n/a"}


def pytest_configure(config: pytest.Config) -> None:
    lifecycle.install_signal_handlers()


@pytest.fixture(scope="session")
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor()
    try:
        yield sup
    finally:
        sup.close()


@pytest.fixture(scope="session")
def harness(supervisor: Supervisor) -> Iterator[Harness]:
    """PostgreSQL for the whole pytest session: embedded, or GAUNTLET_PG_DSN if set."""
    with open_harness(supervisor=supervisor) as opened:
        yield opened


@pytest.fixture
def fresh_db(harness: Harness) -> str:
    """DSN of a new database cloned from the base template."""
    return harness.databases.dsn(harness.databases.fresh())


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    events.emit("case_start", nodeid=nodeid, session=os.environ.get("NOX_CURRENT_SESSION", ""))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # One verdict per case: the call phase, or the setup/teardown phase that went wrong.
    if (
        report.when == "call"
        or (report.when == "setup" and not report.passed)
        or (report.when == "teardown" and report.failed)
    ):
        verdict = VERDICTS[report.outcome]
        if report.when != "call" and report.failed:
            verdict = "error"
        events.emit(
            "case_end",
            nodeid=report.nodeid,
            verdict=verdict,
            duration_s=round(report.duration, 3),
            session=os.environ.get("NOX_CURRENT_SESSION", ""),
        )
