"""Each fault primitive takes effect and heals, against the real Toxiproxy and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from toxiproxy import api as toxiproxy_api

from chaos import nemesis, schedule
from chaos.toxiproxy import Proxy, ToxiproxyError, ToxiproxyServer
from gauntlet.driver import Worker
from gauntlet.pg import EmbeddedCluster
from gauntlet.supervise import Supervisor


@pytest.fixture(scope="module")
def toxiproxy(harness) -> Iterator[ToxiproxyServer]:
    server = ToxiproxyServer(harness.supervisor).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(toxiproxy: ToxiproxyServer, harness) -> Iterator[Proxy]:
    made = toxiproxy.create_proxy(f"t{time.monotonic_ns()}", harness.server.port)
    yield made
    made.reset()


def through(proxy: Proxy, harness) -> str:
    params = conninfo_to_dict(harness.server.dsn())
    params["port"] = proxy.port
    return make_conninfo("", **params)


def query_works(dsn: str, timeout_s: int = 2) -> bool:
    try:
        with psycopg.connect(
            dsn, connect_timeout=timeout_s, options=f"-c statement_timeout={timeout_s * 1000}"
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


@pytest.mark.parametrize(
    ("kind", "attributes"),
    [
        ("reset_peer", {"timeout": 0}),
        ("timeout", {"timeout": 0}),
        ("limit_data", {"bytes": 1}),
        ("latency", {"latency": 3000, "jitter": 0}),
        ("bandwidth", {"rate": 0}),
        ("slicer", {"average_size": 1, "delay": 500000}),
    ],
)
def test_each_toxic_breaks_queries_and_heals(proxy: Proxy, harness, kind: str, attributes: dict) -> None:
    dsn = through(proxy, harness)
    assert query_works(dsn)
    fault = nemesis.Toxic(proxy, kind, attributes)
    fault.apply()
    assert not query_works(dsn, timeout_s=1), f"{kind} did not take effect"
    fault.heal()
    assert query_works(dsn), f"{kind} did not heal"


def test_partition_and_heal(proxy: Proxy, harness) -> None:
    dsn = through(proxy, harness)
    fault = nemesis.Partition(proxy)
    fault.apply()
    assert not query_works(dsn, timeout_s=1)
    fault.heal()
    assert query_works(dsn)


def test_toxics_update_in_place_and_5xx_raise(proxy: Proxy, toxiproxy: ToxiproxyServer) -> None:
    proxy.add_toxic("slow", "latency", latency=10)
    proxy.update_toxic("slow", latency=20)
    assert toxiproxy.call(proxy.client.get_toxic, "slow").attributes["latency"] == 20
    with pytest.raises(Exception, match=r"404|NotFound|not found"):
        proxy.update_toxic("no_such_toxic", latency=1)
    failed = requests.Response()
    failed.status_code, failed._content = 500, b"boom"
    with pytest.raises(ToxiproxyError, match="answered 500"):
        toxiproxy_api.validate_response(failed)  # the client's own hook, as the wrapper replaced it


def test_terminate_backends_ends_the_sessions(harness, fresh_db: str) -> None:
    database = conninfo_to_dict(fresh_db)["dbname"]
    victim = psycopg.connect(fresh_db, autocommit=True)
    fault = nemesis.TerminateBackends(harness.server.dsn(), database)
    fault.apply()
    assert fault.killed >= 1
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    assert query_works(fresh_db), "a new session must still work"


def test_statement_timeout_and_heal(harness, fresh_db: str) -> None:
    database = conninfo_to_dict(fresh_db)["dbname"]
    fault = nemesis.StatementTimeout(harness.server.dsn(), database, timeout_ms=1)
    fault.apply()
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1ms",)
    fault.heal()
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_connection_hog_exhausts_max_connections_and_heals(harness, fresh_db: str) -> None:
    victim = psycopg.connect(fresh_db, autocommit=True)
    fault = nemesis.ConnectionHog(
        harness.server.dsn(), harness.server.dsn(), terminate_database=conninfo_to_dict(fresh_db)["dbname"]
    )
    fault.apply()
    try:
        assert fault.held, "no slot was taken"
        assert fault.terminated >= 1
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match=r"too many clients|reserved"):
            psycopg.connect(fresh_db, connect_timeout=3).close()
    finally:
        fault.heal()
    assert query_works(fresh_db)


def test_postgres_restart_drops_sessions_and_comes_back(tmp_path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    cluster = EmbeddedCluster(supervisor)
    server = cluster.start()
    try:
        before = psycopg.connect(server.dsn(), autocommit=True)
        nemesis.RestartPostgres(cluster).apply()
        with pytest.raises(psycopg.OperationalError):
            before.execute("SELECT 1")
        assert query_works(server.dsn())
    finally:
        cluster.stop()
        supervisor.close()


def test_a_held_snapshot_keeps_dead_rows_and_heals(harness, fresh_db: str) -> None:
    """While it is held VACUUM cannot remove rows deleted after its snapshot; healed, it can."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
        fault = nemesis.HeldSnapshot(fresh_db)
        fault.apply()
        try:
            conn.execute("DELETE FROM t")
            conn.execute("VACUUM t")
            kept = conn.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 't'").fetchone()[0]
            assert kept == 100, f"VACUUM removed rows a held snapshot can still see ({kept} dead left)"
            states = conn.execute(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            assert sorted(s for (s,) in states) == ["idle in transaction", "idle in transaction"]
        finally:
            fault.heal()
        conn.execute("VACUUM t")
        assert conn.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 't'").fetchone()[0] == 0


def test_read_only_primary_refuses_writes_in_open_sessions_and_heals(harness, fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        fault = nemesis.ReadOnlyPrimary(harness.server.dsn())
        fault.apply()
        try:
            time.sleep(0.2)  # the reload reaches open sessions at their next command
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO t VALUES (1)")
        finally:
            fault.heal()
        time.sleep(0.2)
        conn.execute("INSERT INTO t VALUES (1)")


def test_failover_promotes_the_standby_with_the_primarys_data_and_moves_the_address(
    tmp_path, toxiproxy: ToxiproxyServer
) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    primary = EmbeddedCluster(supervisor)
    primary.start()
    standby = None
    try:
        front = toxiproxy.create_proxy(f"f{time.monotonic_ns()}", primary.port)
        via_front = make_conninfo(primary.server.dsn(), port=str(front.port))
        with psycopg.connect(via_front, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int)")
        standby = primary.start_standby()
        with psycopg.connect(via_front, autocommit=True) as conn:
            conn.execute("INSERT INTO t VALUES (1)")  # committed after the copy: streamed
        nemesis.Failover(primary, standby, [front]).apply()
        with psycopg.connect(via_front, autocommit=True) as conn:
            assert conn.execute("SELECT inet_server_port(), count(*) FROM t").fetchone() == (standby.port, 1)
            conn.execute("INSERT INTO t VALUES (2)")  # the promoted standby takes writes
        toxiproxy.call(front.client.destroy)
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
        supervisor.close()
    assert standby is not None and standby.root is None


def test_pause_and_kill_a_worker(tmp_path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    helper = supervisor.spawn("sleeper", ["sleep", "600"])
    worker = Worker("w", helper)
    pause = nemesis.PauseWorker(worker)
    pause.apply()
    time.sleep(0.2)
    stat = Path(f"/proc/{helper.pid}/stat")
    assert stat.read_text().split()[2] == "T"
    pause.heal()
    time.sleep(0.2)
    assert stat.read_text().split()[2] != "T"
    respawned = []
    kill = nemesis.KillWorker(worker, lambda: respawned.append(True))
    kill.apply()
    assert not worker.alive()
    kill.heal()
    assert respawned == [True]
    supervisor.close()


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert schedule.draw("partition", 7) == schedule.draw("partition", 7)
    assert schedule.draw("partition", 7) != schedule.draw("partition", 8)
    plan = schedule.draw("x", 3, faults=3)
    ends = [w.start_s + w.duration_s for w in plan.windows]
    assert all(end < nxt.start_s for end, nxt in zip(ends, plan.windows[1:], strict=False)), "windows overlap"
