"""Schema installation: idempotent, and a failed one leaves nothing half-made."""

from __future__ import annotations

import psycopg
import pytest

from gauntlet import schemas
from gauntlet.catalog import Sdk, System
from gauntlet.driver import Driver
from gauntlet.pg import Harness

INSTALLER_DIRECT = "the harness runs each system's installer straight to PostgreSQL in every topology"
OBJECTS = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"""


def relations(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(OBJECTS).fetchone()[0])


@pytest.mark.direct_only(INSTALLER_DIRECT)
def test_migrate_twice(harness: Harness, manifest: Sdk, system: System, database: str, queue_name: str) -> None:
    """The installer run again does what its system declares (idempotent: succeeds; refuses:
    exits non-zero) and changes no object; the driver's prepare, run twice, changes nothing the second time."""
    before = relations(database)
    rerun = system.installer.rerun
    if rerun == "idempotent":
        schemas.install(system, database, harness.supervisor)
    elif rerun == "refuses":
        with pytest.raises(schemas.SchemaError):
            schemas.install(system, database, harness.supervisor)
    # "unsupported" (its docs say not to run it twice on a schema): only prepare runs again.
    assert relations(database) == before, f"the second install ({rerun}) changed the relations"
    driver = Driver(manifest, harness.supervisor, database, queue_name)
    driver.prepare()
    once = relations(database)
    driver.prepare()
    assert relations(database) == once, f"a second prepare changed the relations ({once} before it)"


@pytest.mark.direct_only(INSTALLER_DIRECT)
def test_failed_migration_leaves_nothing_half_made(harness: Harness, system: System) -> None:
    """An install that fails part-way (the database refuses new objects half-way through) rolls back whole."""
    name = harness.databases.fresh(label="half")
    dsn = harness.databases.dsn(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Installers create tables before indexes; an event trigger refusing the first index
        # makes the install fail after some objects were made.
        conn.execute("""CREATE FUNCTION public.refuse_indexes() RETURNS event_trigger LANGUAGE plpgsql AS $$
                        BEGIN RAISE EXCEPTION 'gauntlet: index creation refused mid-migration'; END $$""")
        conn.execute(
            "CREATE EVENT TRIGGER refuse_indexes ON ddl_command_end WHEN TAG IN ('CREATE INDEX')"
            " EXECUTE FUNCTION public.refuse_indexes()"
        )
        before = conn.execute(OBJECTS).fetchone()[0]
    with pytest.raises(schemas.SchemaError):
        schemas.install(system, dsn, harness.supervisor)
    with psycopg.connect(dsn) as conn:
        after = conn.execute(OBJECTS).fetchone()[0]
    assert after == before, f"the failed install left {after - before} relations behind"
