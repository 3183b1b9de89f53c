"""pytest plugin shared by tests/, sql_tests/, e2e/ and chaos/: the PostgreSQL fixtures,
SIGTERM-as-Ctrl-C, and progress events for the main job's live view."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from _pytest.runner import runtestprotocol

from gauntlet import catalog, events, lifecycle
from gauntlet.ids import HARNESS_ERROR, RowId
from gauntlet.pg import Harness, open_harness
from gauntlet.supervise import Supervisor

VERDICTS = {"passed": "pass", "failed": "fail", "skipped": "n/a"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rerun-failures", action="store_true", help="re-run a failing case once; a pass then is flaky")
    parser.addoption(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each selected case N times with the same seed and record every outcome (measures a failure rate)",
    )


def pytest_configure(config: pytest.Config) -> None:
    lifecycle.install_signal_handlers()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """--repeat N: the case runs N times; it reports its first failure (or its last pass)
    with `repeat_failed` = "k/N" and every outcome in order, so a finding can state its rate.

    --rerun-failures: a failing case runs once more (same seed: the seed is per session);
    a pass on the re-run is reported as passed with a `flaky` property saying how the first
    run failed, and the report shows it as *flaky*, never as *pass*. A failure that is a
    recorded finding is not re-run."""
    repeat = int(item.config.getoption("--repeat"))
    if repeat <= 1 and not item.config.getoption("--rerun-failures"):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    if repeat > 1:
        reports = _repeated(item, nextitem, repeat)
    else:
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        failed = next((r for r in reports if r.failed), None)
        if failed is not None and (HARNESS_ERROR in dict(failed.user_properties) or not _a_known_finding(item, failed)):
            retry = runtestprotocol(item, nextitem=nextitem, log=False)
            if not any(r.failed for r in retry):
                first = _failure_message(failed)
                for report in retry:
                    report.user_properties.append(("flaky", f"failed, then passed on re-run: {first}"))
            reports = retry
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _failure_message(report: pytest.TestReport) -> str:
    """What the first run's assertion said (a flaky cell's reason), not its traceback's last line."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr)
    return text[:600]


def _repeated(item: pytest.Item, nextitem: pytest.Item | None, times: int) -> list[pytest.TestReport]:
    runs = [runtestprotocol(item, nextitem=nextitem, log=False) for _ in range(times)]
    outcomes = ["fail" if any(r.failed for r in run) else "pass" for run in runs]
    chosen = next((run for run, outcome in zip(runs, outcomes, strict=True) if outcome == "fail"), runs[-1])
    for report in chosen:
        report.user_properties.append(("repeat_failed", f"{outcomes.count('fail')}/{times}"))
        report.user_properties.append(("repeat_outcomes", ",".join(outcomes)))
    return chosen


def _a_known_finding(item: pytest.Item, report: pytest.TestReport) -> bool:
    """A case that fails as one of its system's findings says it does is not re-run: a
    second run proves nothing and costs the scenario's bound again."""
    props = {key: str(value) for key, value in report.user_properties}
    suite, sdk = props.get("suite", ""), props.get("sdk", "")
    row = RowId.interop(props["worker_sdk"]) if suite == "interop" else RowId(suite, item.name)
    system = props.get("system", "")
    findings = catalog.load().findings()
    topology = props.get("topology", "direct")
    return any(
        f.expects_verdict and f.verdict == "fail" and f.covers(str(row), sdk, system, topology) for f in findings
    )


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
        if report.failed and (report.when != "call" or HARNESS_ERROR in dict(report.user_properties)):
            verdict = "error"
        events.emit(
            "case_end",
            nodeid=report.nodeid,
            verdict=verdict,
            duration_s=round(report.duration, 3),
            session=os.environ.get("NOX_CURRENT_SESSION", ""),
        )
