"""The PostgreSQL the harness tests against: an embedded throwaway cluster or an external server.

Either way the harness only ever creates and drops databases carrying its own run prefix,
one fresh database per scenario, cloned from a prepared template.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gauntlet.supervise import Helper, HelperError, Supervisor

DEFAULT_BINDIR = Path(os.environ.get("GAUNTLET_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
EXTERNAL_DSN_ENV = "GAUNTLET_PG_DSN"
READY_BOUND_S = 15.0
STOP_BOUND_S = 15.0
_DB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Where the server's files go: a memory filesystem when the machine has one with room, since
# every CREATE DATABASE from a template writes the template through the WAL. On this machine
# kind 40 clones cost 1.9 s of server CPU on /dev/shm against 11.6-12.1 s on /tmp (ext4 on a
# virtual disk). fsync is off either way, so what a crash of PostgreSQL keeps is the same.
MEMORY_FS = Path("/dev/shm")  # noqa: S108 (only mkdtemp's parent: random names, mode 0700)
MEMORY_FS_ROOM = 4 << 30  # a cluster's WAL and databases, for each session the main job runs at once
DISK_TMP = Path("/tmp")  # noqa: S108 (likewise)


def redact(dsn: str) -> str:
    """The DSN with its password replaced, for logs and reports."""
    params = conninfo_to_dict(dsn)
    if params.get("password"):
        params["password"] = "***"  # noqa: S105 (a mask, not a secret)
    return make_conninfo("", **params)


def as_url(dsn: str) -> str:
    """The same connection as a postgresql:// URL, for clients that take only URLs (node-postgres, asyncpg)."""
    params = conninfo_to_dict(dsn)
    user = quote(str(params.get("user", "")), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = params.get("host", "127.0.0.1")
    port = params.get("port", 5432)
    return f"postgresql://{auth}{host}:{port}/{quote(str(params.get('dbname', 'postgres')), safe='')}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temp_parent() -> Path:
    """MEMORY_FS when it is there, writable and has room, else DISK_TMP: both keep socket paths short."""
    try:
        if os.access(MEMORY_FS, os.W_OK | os.X_OK) and shutil.disk_usage(MEMORY_FS).free >= MEMORY_FS_ROOM:
            return MEMORY_FS
    except OSError:
        pass
    return DISK_TMP


def owned_temp_dir(prefix: str, user: str | None) -> Path:
    """A mkdtemp directory under `temp_parent()`, owned by `user` when given: the server
    processes run as `postgres` when the harness is root (initdb and PgBouncer refuse root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=temp_parent()))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    return root


def wait_ready(process: Helper, ready: Callable[[], bool], bound_s: float) -> bool:
    """Until `ready()` (True), the process dies or the bound passes (False)."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if not process.alive():
            return False
        if ready():
            return True
        time.sleep(0.02)
    return False


def _accepts(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


@dataclass(frozen=True)
class Server:
    """How to reach a server: a base DSN whose database name is swapped per use."""

    base_dsn: str
    admin_db: str = "postgres"

    def dsn(self, dbname: str | None = None) -> str:
        return make_conninfo(self.base_dsn, dbname=dbname or self.admin_db)

    @property
    def port(self) -> int:
        return int(conninfo_to_dict(self.base_dsn).get("port") or 5432)

    def __str__(self) -> str:
        return redact(self.base_dsn)


@dataclass
class EmbeddedCluster:
    """A PostgreSQL 15 cluster in a mkdtemp directory (`temp_parent()`), owned by this process.

    initdb refuses to run as root, so as root the cluster runs as the `postgres` user;
    /dev/shm and /tmp keep the Unix socket path short and traversable by that user.
    """

    supervisor: Supervisor
    bindir: Path = DEFAULT_BINDIR
    settings: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    port: int = 0
    process: Helper | None = None
    ready_s: float = 0.0
    _argv: list[str] = field(default_factory=list)

    @property
    def _user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def start(self) -> Server:
        began = time.perf_counter()
        self.root = owned_temp_dir("gauntlet-pg-", self._user)
        initdb = self.supervisor.run(
            "postgres-initdb",
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=60,
            user=self._user,
        )
        if initdb.returncode != 0:
            raise HelperError(f"initdb failed (exit {initdb.returncode}); log: {initdb.log_path}")
        self._launch()
        self.ready_s = time.perf_counter() - began
        return self.server

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def server(self) -> Server:
        return Server(f"host=127.0.0.1 port={self.port} user=postgres")

    def _launch(self) -> None:
        """Start postgres on a free loopback port, retrying if another process takes the port."""
        for _attempt in range(3):
            self.port = free_port()
            config = {
                "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(self.root),
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "200",
                "max_wal_size": "256MB",  # on a memory filesystem the WAL is memory: keep the main job's clusters small
                "log_min_messages": "warning",
                **self.settings,
            }
            argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
            for key, value in config.items():
                argv += ["-c", f"{key}={value}"]
            self._argv = argv
            self.process = self.supervisor.spawn("postgres", argv, user=self._user)
            if self._wait_ready():
                return
            self.process.kill()
            if "could not bind" not in self.process.log_tail():
                break
        raise HelperError(f"PostgreSQL did not start:\n{self.process.log_tail() if self.process else ''}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        return wait_ready(self.process, lambda: _accepts(self.server.dsn()), READY_BOUND_S)

    def start_standby(self) -> EmbeddedCluster:
        """A streaming standby of this cluster (pg_basebackup -R), in its own temp dir, on its
        own loopback port, with the same settings: what a failover promotes."""
        standby = EmbeddedCluster(self.supervisor, self.bindir, dict(self.settings))
        standby.root = owned_temp_dir("gauntlet-pg-standby-", self._user)
        copy = self.supervisor.run(
            "postgres-basebackup",
            [
                str(self.bindir / "pg_basebackup"),
                "-D",
                str(standby.data_dir),
                "-d",
                f"host=127.0.0.1 port={self.port} user=postgres",
                "-R",  # standby.signal and primary_conninfo: it starts streaming
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            timeout=60,
            user=self._user,
        )
        if copy.returncode != 0:
            shutil.rmtree(standby.root, ignore_errors=True)
            raise HelperError(f"pg_basebackup failed (exit {copy.returncode}); log: {copy.log_path}")
        standby._launch()
        return standby

    def promote(self) -> None:
        """A standby becomes a primary (pg_promote, waiting for it)."""
        with psycopg.connect(self.server.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_promote(true, 30)")

    def stop_server(self) -> None:
        """Fast shutdown, data kept: a standby streaming from it has everything it committed."""
        self._shutdown()

    def start_again(self) -> None:
        self.process = self.supervisor.spawn("postgres", self._argv, user=self._user)
        if not self._wait_ready():
            raise HelperError(f"PostgreSQL did not come back on port {self.port}")

    def restart(self) -> None:
        """Fast-stop and start again on the same port and data (a chaos fault)."""
        self.stop_server()
        self.start_again()

    def _shutdown(self) -> None:
        if self.process is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: backends are ended, then the postmaster.
            self.process.stop(grace=STOP_BOUND_S, first_signal=signal.SIGINT)

    def stop(self) -> None:
        try:
            self._shutdown()
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None


class Databases:
    """Creates fresh databases from cached templates; drops only the ones it made."""

    def __init__(self, server: Server, run_id: str | None = None) -> None:
        self.server = server
        self.prefix = f"g_{run_id or secrets.token_hex(4)}"
        self.created: list[str] = []
        self._templates: dict[str, str] = {}
        self._counter = 0

    def _name(self, label: str) -> str:
        name = f"{self.prefix}_{label}"
        if not _DB_NAME.match(name):
            raise ValueError(f"unsafe database name {name!r}")
        return name

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server.dsn(), autocommit=True, connect_timeout=10)

    def template(self, key: str, prepare: Callable[[str], None] | None = None, source: str | None = None) -> str:
        """A template database, cloned from `source` (default: an empty one) and prepared with
        `prepare(dsn)`, once per key. A prepare that fails leaves no half-made template: the
        next call tries again."""
        if key not in self._templates:
            name = self._create(self._name(f"tpl_{key}"), source)
            if prepare is not None:
                try:
                    prepare(self.server.dsn(name))
                except BaseException:
                    with suppress(psycopg.Error):  # a server that is down: drop_all's problem
                        self.drop(name)
                    raise
            self._templates[key] = name
        return self._templates[key]

    def fresh(self, template: str | None = None, label: str = "db") -> str:
        """A new empty database cloned from `template` (or the base template)."""
        self._counter += 1
        source = template or self.template("base")
        return self._create(self._name(f"{label}_{self._counter}"), source)

    def _create(self, name: str, template: str | None) -> str:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._admin() as conn:
            conn.execute(statement)
        self.created.append(name)
        return name

    def dsn(self, name: str) -> str:
        return self.server.dsn(name)

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if name in self.created:
            self.created.remove(name)
        self._templates = {k: v for k, v in self._templates.items() if v != name}

    def drop_all(self) -> None:
        for name in reversed(list(self.created)):
            self.drop(name)


@dataclass
class Harness:
    """What a session works with: the supervisor, the server and its databases."""

    supervisor: Supervisor
    server: Server
    databases: Databases
    cluster: EmbeddedCluster | None


@contextmanager
def open_harness(external_dsn: str | None = None, supervisor: Supervisor | None = None) -> Iterator[Harness]:
    """Bring up PostgreSQL (embedded unless an external DSN is given) and tear it all down.

    Teardown runs on normal exit, exceptions and KeyboardInterrupt (which SIGTERM becomes
    once gauntlet.lifecycle's handlers are installed).
    """
    external_dsn = external_dsn if external_dsn is not None else os.environ.get(EXTERNAL_DSN_ENV)
    own_supervisor = supervisor is None
    supervisor = supervisor or Supervisor()
    cluster: EmbeddedCluster | None = None
    try:
        if external_dsn:
            params = conninfo_to_dict(external_dsn)
            server = Server(external_dsn, admin_db=str(params.get("dbname") or "postgres"))
        else:
            cluster = EmbeddedCluster(supervisor)
            server = cluster.start()
        databases = Databases(server)
        try:
            yield Harness(supervisor, server, databases, cluster)
        finally:
            if cluster is None:  # an embedded cluster is deleted whole instead
                databases.drop_all()
    finally:
        if cluster is not None:
            cluster.stop()
        if own_supervisor:
            supervisor.close()
