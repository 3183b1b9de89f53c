"""Gauntlet's sessions, generated from the catalog (sdk_adapters/<system>/system.toml and each
SDK's manifest.toml), tagged by system, language and SDK name, so `nox -t go`, `nox -t pgmq`
or `nox -t pgmq-py` select them.

Every session runs in the harness virtualenv that the bootstrap made (no per-session
virtualenvs: they would reach the registries on every run).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))

from gauntlet import catalog, paths
from gauntlet.ids import SessionId

nox.options.default_venv_backend = "none"
nox.options.error_on_missing_interpreters = True

CATALOG = catalog.load()
SDK_PARAMS = [nox.param(s.name, tags=s.tags) for s in CATALOG.sdks()]
SYSTEM_PARAMS = [nox.param(s.name, tags=[s.name, *(sdk.name for sdk in s.sdks)]) for s in CATALOG.systems]
# Interrupts: give pytest time to stop drivers and PostgreSQL before nox escalates.
GRACE = {"interrupt_timeout": 60.0, "terminate_timeout": 15.0}


def _own_logs(matrix_session: SessionId) -> dict[str, str]:
    """The environment that gives a matrix session's helpers their own log folder."""
    return {"GAUNTLET_LOGS": str(paths.OUT / matrix_session.helper_logs)}


def _pytest(session: nox.Session, *args: str, matrix_session: SessionId) -> None:
    paths.JUNIT.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pytest", *args, f"--junitxml={paths.JUNIT / str(matrix_session.junit_file)}"]
    session.run(*argv, *session.posargs, env=_own_logs(matrix_session), **GRACE)  # type: ignore[arg-type]


@nox.session(tags=["core"])
def tests(session: nox.Session) -> None:
    """The harness's own test suite. Its outputs (logs, JUnit, reports of the scenarios it
    runs) go to a temporary folder, removed afterwards: reports/out/ keeps only real runs."""
    with tempfile.TemporaryDirectory(prefix="gauntlet-tests-") as out:
        argv = [sys.executable, "-m", "pytest", "tests", *session.posargs]
        session.run(*argv, env={"GAUNTLET_OUT": out}, **GRACE)  # type: ignore[arg-type]


@nox.session(tags=["core"])
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy on the harness package."""
    session.run(sys.executable, "-m", "ruff", "check", ".")
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".")
    session.run(sys.executable, "-m", "mypy", "gauntlet", "reports", "sql_tests")


@nox.session(tags=["sql"])
@nox.parametrize("system", SYSTEM_PARAMS)
def sql(session: nox.Session, system: str) -> None:
    """One system's pgTAP suites, run by pg_prove, into reports/out/junit/sql-<system>.xml."""
    logs = _own_logs(SessionId("sql", system))
    session.run(sys.executable, "-m", "sql_tests.run", "--system", system, env=logs, **GRACE)  # type: ignore[arg-type]


@nox.session(tags=["e2e"])
@nox.parametrize("sdk", SDK_PARAMS)
def e2e(session: nox.Session, sdk: str) -> None:
    """The E2E scenario catalog for one SDK."""
    _pytest(session, "e2e", f"--sdk={sdk}", "--rerun-failures", matrix_session=SessionId("e2e", sdk))


@nox.session(tags=["pgbouncer"])
@nox.parametrize("sdk", SDK_PARAMS)
def pgbouncer(session: nox.Session, sdk: str) -> None:
    """The E2E scenario catalog for one SDK through a PgBouncer in transaction mode."""
    matrix_session = SessionId("pgbouncer", sdk)
    _pytest(session, "e2e", f"--sdk={sdk}", "--topology=pgbouncer", "--rerun-failures", matrix_session=matrix_session)


if any((paths.ROOT / "chaos").glob("test_*.py")):  # sessions appear with the first chaos scenario

    @nox.session(tags=["chaos"])
    @nox.parametrize("sdk", SDK_PARAMS)
    def chaos(session: nox.Session, sdk: str) -> None:
        """The chaos catalog for one SDK, faults injected from a seeded schedule."""
        _pytest(session, "chaos", f"--sdk={sdk}", "--rerun-failures", matrix_session=SessionId("chaos", sdk))


@nox.session(tags=["bench"])
def bench(session: nox.Session) -> None:
    """Throughput and latency of every SDK beside the raw-SQL limit, and the harness's own cost."""
    session.run(sys.executable, "-m", "gauntlet.bench", *session.posargs, **GRACE)  # type: ignore[arg-type]


@nox.session(tags=["report"])
def report(session: nox.Session) -> None:
    """Merge every JUnit file under reports/out/junit/ into the matrix (runs last)."""
    session.run(sys.executable, "-m", "reports.build", *session.posargs)
