"""Install a system's schema with the installer its system.toml declares (the system's own,
pinned), so a schema under test is always the one its maintainers ship.

The SQL sessions and every scenario go through `install()`. The DSN travels in the
environment, never in argv, so it cannot reach a log.
"""

from __future__ import annotations

import os
from pathlib import Path

from gauntlet import catalog
from gauntlet.catalog import System
from gauntlet.pg import as_url
from gauntlet.supervise import Supervisor

INSTALL_BOUND_S = 120.0


class SchemaError(Exception):
    """An installer failed; the message carries its exit code and the end of its log."""


def install(system: System, dsn: str, supervisor: Supervisor) -> None:
    installer = system.installer
    run(f"install-{system.name}", installer.argv, installer.folder, installer.env, dsn, supervisor)


def run(
    label: str, argv: tuple[str, ...], folder: Path, extra_env: dict[str, str], dsn: str, supervisor: Supervisor
) -> None:
    """One schema tool (an installer, a migration) on `dsn`, the way `install` runs the installer."""
    url = as_url(dsn)
    env = {**os.environ, "DATABASE_URL": url, "PGBOSS_DATABASE_URL": url, "PGDSN": url, "GAUNTLET_DSN": dsn}
    env.update(extra_env)
    expanded = catalog.expand(argv, folder)
    try:
        done = supervisor.run(label, expanded, timeout=INSTALL_BOUND_S, env=env, cwd=folder)
    except OSError as exc:  # e.g. the installer was never built
        raise SchemaError(f"{label} cannot start {expanded[0]}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.log.splitlines()[-15:])
        raise SchemaError(f"{label} exited {done.returncode} (log: {done.log_path}):\n{tail}")
