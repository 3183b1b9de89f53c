"""The sql session: each system's pgTAP suites in a fresh database holding that system's
real schema plus pgtap and dblink, run by pg_prove; one normalised JUnit file per system."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import psycopg

from gauntlet import catalog, events, lifecycle, paths, pgtap, schemas
from gauntlet.ids import SessionId
from gauntlet.pg import Harness, open_harness

SUITES = Path(__file__).resolve().parent
HELPERS = SUITES / "helpers.sql"


def systems() -> list[str]:
    """The catalog's systems: each must have its suites in sql_tests/<system>/."""
    return [s.name for s in catalog.load().systems]


def prepare_database(harness: Harness, system: str) -> str:
    """A fresh database cloned from a per-system template (schema + pgtap + dblink + helpers)."""

    def prepare(dsn: str) -> None:
        schemas.install(catalog.load().system(system), dsn, harness.supervisor)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap")
            conn.execute("CREATE EXTENSION IF NOT EXISTS dblink")
            conn.execute(HELPERS.read_text())
        if (SUITES / system / "probe.py").exists():  # the SDK's own fetch query, where it lives client-side
            importlib.import_module(f"sql_tests.{system.replace('-', '_')}.probe").install(dsn)

    template = harness.databases.template(f"sql_{system.replace('-', '_')}", prepare)
    return harness.databases.fresh(template, label="sql")


def run_system(harness: Harness, system: str, junit_dir: Path) -> int:
    """Returns the number of failing cases; writes junit_dir/sql-<system>.xml whatever happens."""
    directory = SUITES / system
    try:
        dsn = harness.databases.dsn(prepare_database(harness, system))
        xml_text, stderr = pgtap.prove(directory, dsn, harness.supervisor, f"pg_prove-{system}")
    except (schemas.SchemaError, psycopg.Error) as exc:
        xml_text, stderr = "", f"could not prepare the {system} database: {exc}"
    result = pgtap.normalise(xml_text, stderr, directory, system)
    junit_dir.mkdir(parents=True, exist_ok=True)
    result.write(str(junit_dir / str(SessionId("sql", system).junit_file)), pretty=True)
    failing = {id(c) for c in pgtap.failed_cases(result)}
    for suite in result:
        for case in suite:
            verdict = "fail" if id(case) in failing else ("n/a" if case.is_skipped else "pass")
            events.emit("case_end", nodeid=f"{suite.name}::{case.name}", verdict=verdict, duration_s=case.time)
    return len(failing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", action="append", help="only these systems (default: all)")
    args = parser.parse_args(argv)
    lifecycle.install_signal_handlers()
    chosen = args.system or systems()
    failures = 0
    with open_harness() as harness:
        for system in chosen:
            failed = run_system(harness, system, paths.JUNIT)
            print(f"sql {system}: {failed} failing case(s) -> {paths.JUNIT / str(SessionId('sql', system).junit_file)}")
            failures += failed
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
