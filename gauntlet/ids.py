"""Typed identities, built once and rendered many ways: a session (its nox name, its JUnit
file, its log), a matrix row, a cell. Nothing downstream parses these strings back.

Standard library only: the bootstrap and the noxfile import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TARGET_KEY = {"sql": "system", "e2e": "sdk", "chaos": "sdk", "pgbouncer": "sdk"}  # each per-target kind's parameter
# The topology a kind's cells record (e2e/fixtures.py), where it is not `direct`, and the pytest
# catalog a kind runs, where it is not its own name: `pgbouncer` is the E2E catalog through PgBouncer.
KIND_TOPOLOGY = {"chaos": "toxiproxy", "pgbouncer": "pgbouncer"}
KIND_CATALOG = {"pgbouncer": "e2e"}


# A case property its writer and reader share: the case judged nothing, for the harness or its
# topology failed under it (a crashed PgBouncer, e2e/fixtures.py). Its verdict is *error*
# (reports/junit.py), and the case is re-run even where a finding expects it to fail.
HARNESS_ERROR = "harness_error"


@dataclass(frozen=True, order=True)
class SessionId:
    """One nox session: a kind, and the system (sql) or SDK (e2e, chaos) it runs for."""

    kind: str
    target: str = ""

    @classmethod
    def from_nox(cls, listed: dict[str, Any]) -> SessionId:
        """From one entry of `nox -l --json`: its name and its call_spec, never its display string."""
        kind = str(listed["name"])
        key = TARGET_KEY.get(kind)
        spec = listed.get("call_spec") or {}
        return cls(kind, str(spec.get(key, "")) if key else "")

    @classmethod
    def making(cls, suite: str, target: str, topology: str = "direct") -> SessionId:
        """The session whose cells have this suite and topology (interop cells come from the E2E catalog)."""
        kind = next((k for k, t in KIND_TOPOLOGY.items() if t == topology), "e2e" if suite == "interop" else suite)
        return cls(kind, target)

    @property
    def topology(self) -> str:
        return KIND_TOPOLOGY.get(self.kind, "direct")

    @property
    def catalog(self) -> str:
        """The pytest folder (or, for sql, the suite) the session runs."""
        return KIND_CATALOG.get(self.kind, self.kind)

    @property
    def nox_name(self) -> str:
        key = TARGET_KEY.get(self.kind)
        return f"{self.kind}({key}='{self.target}')" if key and self.target else self.kind

    @property
    def junit_file(self) -> str | None:
        """The JUnit file a matrix session writes (reports/out/junit/), None for others."""
        return f"{self.kind}-{self.target}.xml" if self.kind in TARGET_KEY and self.target else None

    @property
    def evidence_dir(self) -> str:
        """Where its scenarios leave their evidence, relative to reports/out/."""
        return f"evidence/{self.kind}-{self.target}" if self.target else f"evidence/{self.kind}"

    @property
    def helper_logs(self) -> str:
        """Where its helpers (drivers, PostgreSQL, PgBouncer) log, relative to reports/out/."""
        return f"logs/{self.kind}-{self.target}" if self.target else f"logs/{self.kind}"

    @property
    def log_stem(self) -> str:
        return f"session-{self.kind}-{self.target}" if self.target else f"session-{self.kind}"

    def __str__(self) -> str:
        return self.nox_name


@dataclass(frozen=True, order=True)
class RowId:
    """A matrix row: `e2e/test_basic_wave`, `chaos/test_network_fault[partition]`,
    `interop/worker=river-go`, `sql/pgmq/api.sql`, `bench/process_c1`."""

    suite: str
    name: str

    def __str__(self) -> str:
        return f"{self.suite}/{self.name}"

    @classmethod
    def interop(cls, worker_sdk: str) -> RowId:
        return cls("interop", f"worker={worker_sdk}")


@dataclass(frozen=True, order=True)
class CellId:
    row: RowId
    sdk: str
    topology: str = "direct"

    def __str__(self) -> str:
        return f"{self.row} × {self.sdk}" + ("" if self.topology == "direct" else f" @ {self.topology}")

    @property
    def page(self) -> str:
        """The cell's own page, relative to reports/out/."""
        return f"cells/{file_safe(f'{self.row.suite}-{self.row.name}--{self.sdk}--{self.topology}')}.html"


def file_safe(text: str) -> str:
    """A file name for an id: brackets and the like become `_`."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)
