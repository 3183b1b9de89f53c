"""One way to install each system's schema: the system's own installer, pinned.

The SQL sessions and every SDK adapter's `migrate` go through `install()`, so a schema
under test is always the one its maintainers ship. The DSN travels in the environment,
never in argv, so it cannot reach a log.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from gauntlet import paths
from gauntlet.pg import as_url
from gauntlet.supervise import Supervisor

HERE = Path(__file__).resolve().parent
NODE_INSTALLERS = HERE / "node"
RIVER_MIGRATE = paths.TOOLS_BIN / "river-migrate"
INSTALL_BOUND_S = 120.0


class SchemaError(Exception):
    """An installer failed; the message carries its exit code and the end of its log."""


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(system: str, argv: list[str], dsn: str, supervisor: Supervisor) -> None:
    url = as_url(dsn)
    env = {**os.environ, "DATABASE_URL": url, "PGBOSS_DATABASE_URL": url, "PGDSN": url, "GAUNTLET_DSN": dsn}
    env["PYTHONPATH"] = str(paths.ROOT)  # the procrastinate CLI imports its app from gauntlet.schemas
    done = supervisor.run(f"install-{system}", argv, timeout=INSTALL_BOUND_S, env=env, cwd=paths.ROOT)
    if done.returncode != 0:
        tail = "\n".join(done.log.splitlines()[-15:])
        raise SchemaError(f"{system} installer exited {done.returncode} (log: {done.log_path}):\n{tail}")


def _pgmq(dsn: str, supervisor: Supervisor) -> None:
    # PyPI pgmq's installer applies the pgmq.sql it ships; no CREATE EXTENSION.
    code = "import os, pgmq; print('pgmq', pgmq.install_pgmq_from_sql(dsn=os.environ['GAUNTLET_DSN']))"
    _run("pgmq", [sys.executable, "-c", code], dsn, supervisor)


def _graphile_worker(dsn: str, supervisor: Supervisor) -> None:
    cli = NODE_INSTALLERS / "node_modules" / "graphile-worker" / "dist" / "cli.js"
    _run("graphile-worker", [str(paths.NODE22), str(cli), "--schema-only"], dsn, supervisor)


def _pg_boss(dsn: str, supervisor: Supervisor) -> None:
    cli = NODE_INSTALLERS / "node_modules" / "pg-boss" / "dist" / "cli.js"
    _run("pg-boss", [str(paths.NODE22), str(cli), "migrate"], dsn, supervisor)


def _river(dsn: str, supervisor: Supervisor) -> None:
    _run("river", [str(RIVER_MIGRATE)], dsn, supervisor)


def _procrastinate(dsn: str, supervisor: Supervisor) -> None:
    app = "gauntlet.schemas.procrastinate_app.app"
    _run("procrastinate", [_venv_bin("procrastinate"), "--app", app, "schema", "--apply"], dsn, supervisor)


def _pgqueuer(dsn: str, supervisor: Supervisor) -> None:
    _run("pgqueuer", [_venv_bin("pgq"), "install"], dsn, supervisor)


INSTALLERS: dict[str, Callable[[str, Supervisor], None]] = {
    "pgmq": _pgmq,
    "graphile-worker": _graphile_worker,
    "river": _river,
    "procrastinate": _procrastinate,
    "pgqueuer": _pgqueuer,
    "pg-boss": _pg_boss,
}


def install(system: str, dsn: str, supervisor: Supervisor) -> None:
    if system not in INSTALLERS:
        raise SchemaError(f"no installer for system {system!r}; known: {sorted(INSTALLERS)}")
    INSTALLERS[system](dsn, supervisor)
