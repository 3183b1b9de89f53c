"""The embedded cluster, template clones, and external-server mode."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from gauntlet import pg
from gauntlet.pg import Databases, EmbeddedCluster, open_harness, redact, temp_parent
from gauntlet.pgbouncer import PgBouncer
from gauntlet.supervise import Supervisor


def test_cluster_starts_on_loopback_and_stops_without_leftovers(leak_check, tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    cluster = EmbeddedCluster(supervisor)
    server = cluster.start()
    root, port = cluster.root, server.port
    try:
        assert root is not None and root.parent == temp_parent() and root.name.startswith("gauntlet-pg-")
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")
            assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
            assert conn.execute("SHOW fsync").fetchone()[0] == "off"
    finally:
        cluster.stop()
        supervisor.close()
    assert not root.exists()
    leak_check.assert_clean(ports=[port], roots=[str(root)])


def test_clusters_go_to_the_disk_when_the_memory_filesystem_has_no_room(monkeypatch) -> None:
    """A laptop whose /dev/shm is small keeps its clusters in /tmp rather than filling its memory."""
    monkeypatch.setattr(pg, "MEMORY_FS_ROOM", 1 << 60)
    assert pg.temp_parent() == pg.DISK_TMP
    monkeypatch.setattr(pg, "MEMORY_FS_ROOM", 0)
    monkeypatch.setattr(pg, "MEMORY_FS", Path("/nonexistent-memory-fs"))
    assert pg.temp_parent() == pg.DISK_TMP


def test_cluster_restart_keeps_data_and_port(harness) -> None:
    # The session cluster is shared; restart a private one instead.
    supervisor = Supervisor()
    cluster = EmbeddedCluster(supervisor)
    server = cluster.start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE survives (x int)")
        cluster.restart()
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT count(*) FROM survives").fetchone() == (0,)
    finally:
        cluster.stop()
        supervisor.close()


def test_fresh_databases_are_clones_of_the_template(harness) -> None:
    databases = harness.databases

    def prepare(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE seeded (id int)")
            conn.execute("INSERT INTO seeded VALUES (1), (2)")

    template = databases.template("seeded", prepare)
    first = databases.fresh(template)
    second = databases.fresh(template)
    assert first != second
    with psycopg.connect(databases.dsn(first), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM seeded").fetchone() == (2,)
        conn.execute("DELETE FROM seeded")
    with psycopg.connect(databases.dsn(second)) as conn:
        assert conn.execute("SELECT count(*) FROM seeded").fetchone() == (2,), "clones must be independent"
    assert databases.template("seeded", prepare) == template, "templates are made once per key"


def test_a_template_can_build_on_another_and_a_failed_prepare_leaves_none(harness) -> None:
    """The E2E catalog's SDK templates are the system's template plus the driver's prepare."""
    databases = harness.databases

    def seed(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE base_rows AS SELECT 1 AS id")

    def add_queue(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE queue_rows (id int)")

    def fail(dsn: str) -> None:
        add_queue(dsn)
        raise RuntimeError("prepare failed half-way")

    base = databases.template("layer_base", seed)
    with pytest.raises(RuntimeError):
        databases.template("layer_queue", fail, source=base)
    assert not [n for n in databases.created if n.endswith("layer_queue")], "the half-made template was kept"
    layered = databases.template("layer_queue", add_queue, source=base)  # the next call tries again
    with psycopg.connect(databases.dsn(databases.fresh(layered))) as conn:
        assert conn.execute("SELECT count(*) FROM base_rows, queue_rows").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM base_rows").fetchone() == (1,)


def test_external_server_mode_touches_only_its_own_databases(harness) -> None:
    """Point a second harness at the session's cluster as if it were someone else's server."""
    admin_dsn = harness.server.dsn()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE someone_elses")
    try:
        with open_harness(external_dsn=admin_dsn) as external:
            assert external.cluster is None
            made = external.databases.fresh()
            assert made.startswith(external.databases.prefix)
            with psycopg.connect(external.databases.dsn(made)) as conn:
                assert conn.execute("SELECT current_database()").fetchone() == (made,)
        with psycopg.connect(admin_dsn) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert "someone_elses" in names
        assert not [n for n in names if n.startswith(external.databases.prefix)], "its own databases are dropped"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute("DROP DATABASE someone_elses")


def test_unsafe_database_names_are_refused(harness) -> None:
    databases = Databases(harness.server, run_id="x")
    with pytest.raises(ValueError, match="unsafe database name"):
        databases.fresh(label="x; drop table")


def test_passwords_never_reach_logs() -> None:
    assert "s3cret" not in redact("host=127.0.0.1 user=u password=s3cret dbname=d")
    assert "s3cret" not in redact("postgresql://u:s3cret@127.0.0.1:5432/d")


def test_ready_and_clone_times_are_measured(harness, record_property) -> None:
    """Figures for README; measured and recorded, not asserted (bench reports them)."""
    supervisor = Supervisor()
    cluster = EmbeddedCluster(supervisor)
    try:
        cluster.start()
        record_property("ready_s", round(cluster.ready_s, 3))
    finally:
        cluster.stop()
        supervisor.close()
    began = time.perf_counter()
    harness.databases.fresh()
    record_property("fresh_db_s", round(time.perf_counter() - began, 3))


def test_pgbouncer_pools_in_transaction_mode_on_loopback_and_leaves_nothing(leak_check, harness, tmp_path) -> None:
    """The pooler topology is the real thing: Debian's PgBouncer in transaction mode, reaching
    the scenario's database by the wildcard entry, gone with its temp dir when stopped."""
    supervisor = Supervisor(log_dir=tmp_path)
    bouncer = PgBouncer(supervisor, harness.server).start()
    root, port = bouncer.root, bouncer.port
    try:
        name = harness.databases.fresh(label="bouncer")
        dsn = bouncer.dsn(harness.databases.dsn(name))
        with psycopg.connect(make_conninfo(dsn, dbname="pgbouncer"), autocommit=True) as console:
            config = {row[0]: row[1] for row in console.execute("SHOW CONFIG").fetchall()}
        assert (config["pool_mode"], config["listen_addr"]) == ("transaction", "127.0.0.1")
        with psycopg.connect(dsn, autocommit=True) as client:
            assert client.execute("SELECT current_database(), inet_server_port()").fetchone() == (
                name,
                harness.server.port,
            )
    finally:
        bouncer.stop()
        supervisor.close()
    assert root is not None and not root.exists()
    leak_check.assert_clean(ports=[port], roots=[str(root)])
