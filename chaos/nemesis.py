"""The nemesis: fault primitives, each with its heal. A fault acts on the network (Toxiproxy),
on PostgreSQL (backends, settings, connections, the cluster) or on worker processes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from chaos.toxiproxy import Proxy
from gauntlet.driver import Worker
from gauntlet.pg import EmbeddedCluster


class Fault:
    """apply() starts the fault; heal() ends it. Both are idempotent enough to call once each."""

    name = "fault"

    def apply(self) -> None:
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"fault": self.name}


@dataclass
class Toxic(Fault):
    """A Toxiproxy toxic on the workers' connection path: reset_peer, latency (+ jitter),
    timeout (half-open), slicer, bandwidth, limit_data."""

    proxy: Proxy
    kind: str
    attributes: dict[str, Any] = field(default_factory=dict)
    stream: str = "downstream"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.kind

    def apply(self) -> None:
        self.proxy.add_toxic(f"gauntlet_{self.kind}", self.kind, self.stream, **self.attributes)

    def heal(self) -> None:
        with contextlib.suppress(Exception):
            self.proxy.remove_toxic(f"gauntlet_{self.kind}")

    def describe(self) -> dict[str, Any]:
        return {"fault": self.kind, **self.attributes}


@dataclass
class Partition(Fault):
    """The proxy disabled: every connection through it dropped, new ones refused."""

    proxy: Proxy
    name = "partition"

    def apply(self) -> None:
        self.proxy.disable()

    def heal(self) -> None:
        self.proxy.enable()


def _admin(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def backends(admin_dsn: str, database: str, query_like: str | None = None) -> list[int]:
    """Client backends serving `database` (optionally those whose last query matches)."""
    with _admin(admin_dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() AND (%s::text IS NULL OR query ILIKE %s)",
            (database, query_like, query_like),
        ).fetchall()
    return [r[0] for r in rows]


@dataclass
class TerminateBackends(Fault):
    """pg_terminate_backend of the backends serving the workers (e.g. the LISTEN connection,
    or the one holding a job between dequeue and ack), found through pg_stat_activity."""

    admin_dsn: str
    database: str
    query_like: str | None = None
    name = "terminate_backend"
    killed: int = 0

    def apply(self) -> None:
        with _admin(self.admin_dsn) as conn:
            for pid in backends(self.admin_dsn, self.database, self.query_like):
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                self.killed += 1

    def heal(self) -> None:
        """Nothing to undo: the clients must reconnect by themselves."""

    def describe(self) -> dict[str, Any]:
        return {"fault": self.name, "matching": self.query_like or "any", "killed": self.killed}


@dataclass
class StatementTimeout(Fault):
    """A tiny statement_timeout for the workers' database; their sessions are ended so the
    setting reaches them. Heal: the setting reset, sessions ended again to pick it up."""

    admin_dsn: str
    database: str
    timeout_ms: int = 1
    name = "statement_timeout"

    def _set(self, value: str | None) -> None:
        with _admin(self.admin_dsn) as conn:
            db = sql.Identifier(self.database)
            if value is None:
                conn.execute(sql.SQL("ALTER DATABASE {} RESET statement_timeout").format(db))
            else:
                conn.execute(sql.SQL("ALTER DATABASE {} SET statement_timeout = {}").format(db, sql.Literal(value)))
        TerminateBackends(self.admin_dsn, self.database).apply()

    def apply(self) -> None:
        self._set(f"{self.timeout_ms}ms")

    def heal(self) -> None:
        self._set(None)


@dataclass
class ConnectionHog(Fault):
    """Other sessions take every free connection slot (max_connections exhausted); with
    `terminate_database`, the sessions serving that database are then ended through one of
    the held connections (no other connection could be opened), so its clients must
    reconnect into a full server."""

    admin_dsn: str
    hog_dsn: str
    terminate_database: str | None = None
    held: list[psycopg.Connection] = field(default_factory=list)
    terminated: int = 0
    name = "max_connections"

    def apply(self) -> None:
        with _admin(self.admin_dsn) as conn:
            limit = int(conn.execute("SELECT current_setting('max_connections')::int").fetchone()[0])
        self._fill(limit)
        if self.terminate_database and self.held:
            rows = (
                self.held[0]
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.terminate_database,),
                )
                .fetchall()
            )
            self.terminated = len(rows)
            time.sleep(0.3)  # ended backends give their slots back asynchronously
            self._fill(limit)

    def _fill(self, limit: int) -> None:
        """Take slots until refused: superuser clients may use the reserved ones too."""
        while len(self.held) < limit:
            try:
                self.held.append(psycopg.connect(self.hog_dsn, connect_timeout=5, autocommit=True))
            except psycopg.OperationalError:
                return

    def heal(self) -> None:
        while self.held:
            with contextlib.suppress(Exception):
                self.held.pop().close()

    def describe(self) -> dict[str, Any]:
        return {"fault": self.name, "held": len(self.held), "terminated": self.terminated}


@dataclass
class RestartPostgres(Fault):
    """A fast shutdown and start of the whole cluster (same port, same data)."""

    cluster: EmbeddedCluster
    name = "postgres_restart"

    def apply(self) -> None:
        self.cluster.restart()

    def heal(self) -> None:
        """The restart is its own heal."""


@dataclass
class KillWorker(Fault):
    """SIGKILL a worker; heal starts a replacement (the caller's `respawn`)."""

    worker: Worker
    respawn: Callable[[], Any]
    name = "worker_sigkill"

    def apply(self) -> None:
        self.worker.kill()

    def heal(self) -> None:
        self.respawn()


@dataclass
class PauseWorker(Fault):
    """SIGSTOP a worker (e.g. past its visibility timeout/lease); heal sends SIGCONT."""

    worker: Worker
    name = "worker_pause"

    def apply(self) -> None:
        self.worker.pause()

    def heal(self) -> None:
        self.worker.resume()


@dataclass
class HeldSnapshot(Fault):
    """The xmin horizon held back, as a forgotten session does it: one REPEATABLE READ reader
    keeps its snapshot, one session sits idle in transaction holding an xid. Nothing the
    workers do is blocked; VACUUM just cannot remove the dead rows they leave meanwhile."""

    dsn: str  # the workers' database
    name = "held_snapshot"
    _sessions: list[psycopg.Connection] = field(default_factory=list)

    def apply(self) -> None:
        reader = psycopg.connect(self.dsn, connect_timeout=5)
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM pg_class")  # the snapshot is taken at the first query
        idle = psycopg.connect(self.dsn, connect_timeout=5)
        idle.execute("SELECT txid_current()")  # psycopg opened a transaction: now idle in it, with an xid
        self._sessions = [reader, idle]

    def heal(self) -> None:
        for session in self._sessions:
            with contextlib.suppress(psycopg.Error):
                session.rollback()
                session.close()
        self._sessions = []


def dead_tuples(dsn: str) -> int:
    """Dead rows in the database's tables (pg_stat_user_tables), as the statistics system last
    counted them: a busy backend reports about once a second, so the figure may trail by that."""
    with _admin(dsn) as conn:
        row = conn.execute("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables").fetchone()
    return int(row[0]) if row else 0


@dataclass
class ReadOnlyPrimary(Fault):
    """The server turns read-only, as a primary demoted (or a pooler pointed at a standby) does:
    every transaction fails writes with SQLSTATE 25006 until healed. Set cluster-wide and
    reloaded, so open sessions get it too, without being ended."""

    admin_dsn: str
    name = "read_only"

    def _set(self, value: str | None) -> None:
        with _admin(self.admin_dsn) as conn:
            conn.execute("SET default_transaction_read_only = off")  # this session must still write
            if value is None:
                conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            else:
                conn.execute(sql.SQL("ALTER SYSTEM SET default_transaction_read_only = {}").format(sql.Literal(value)))
            conn.execute("SELECT pg_reload_conf()")

    def apply(self) -> None:
        self._set("on")

    def heal(self) -> None:
        self._set(None)


@dataclass
class Failover(Fault):
    """The primary stops (a fast shutdown: its standby has received everything it committed),
    the standby is promoted, and the address everyone uses (a Toxiproxy in front of each
    client) moves to it. The promoted standby stays the primary: there is nothing to heal."""

    primary: EmbeddedCluster
    standby: EmbeddedCluster
    fronts: list[Proxy]
    name = "failover"

    def apply(self) -> None:
        self.primary.stop_server()
        self.standby.promote()
        for front in self.fronts:
            front.retarget(self.standby.port)

    def heal(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"fault": self.name, "from_port": self.primary.port, "to_port": self.standby.port}
