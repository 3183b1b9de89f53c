"""Schema installation: idempotent, and a failed one leaves nothing half-made."""

from __future__ import annotations

import psycopg
import pytest

from gauntlet import schemas
from gauntlet.driver import Driver
from gauntlet.manifests import Manifest
from gauntlet.pg import Harness

OBJECTS = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"""


def test_migrate_twice(harness: Harness, manifest: Manifest, database: str, queue_name: str) -> None:
    """The system's installer and the driver's prepare, run again, change nothing and fail nothing."""
    with psycopg.connect(database) as conn:
        before = conn.execute(OBJECTS).fetchone()[0]
    schemas.install(manifest.system, database, harness.supervisor)
    driver = Driver(manifest, harness.supervisor, database, queue_name)
    driver.prepare()
    driver.prepare()
    with psycopg.connect(database) as conn:
        after = conn.execute(OBJECTS).fetchone()[0]
    assert after >= before


def test_failed_migration_leaves_nothing_half_made(harness: Harness, manifest: Manifest) -> None:
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
        schemas.install(manifest.system, dsn, harness.supervisor)
    with psycopg.connect(dsn) as conn:
        after = conn.execute(OBJECTS).fetchone()[0]
    assert after == before, f"the failed install left {after - before} relations behind"
