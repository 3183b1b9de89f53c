"""A real PgBouncer (Debian's package, installed by the bootstrap) in transaction mode between
the SDKs and PostgreSQL: the pooler topology people deploy in front of their queues.

Transaction mode hands a server connection to a client only for the length of one
transaction, so whatever an SDK keeps on its session (LISTEN, prepared statements, session
advisory locks, SET without LOCAL) may land on another client's connection or vanish. The
bouncer is configured as the deployments in the SDKs' own PgBouncer threads are: stock
settings, `pool_mode = transaction`, one wildcard database entry.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gauntlet.pg import Server, free_port, owned_temp_dir, wait_ready
from gauntlet.supervise import Helper, HelperError, Supervisor

BINARY = "/usr/sbin/pgbouncer"
READY_BOUND_S = 10.0
# Stock PgBouncer but for the mode, the client limit (wide enough never to decide a cell: a
# scenario's many client connections meet the SDK's behaviour, not the bouncer's refusal) and
# one startup parameter.
SETTINGS = {
    "pool_mode": "transaction",
    "auth_type": "trust",
    "max_client_conn": "1000",
    "default_pool_size": "20",  # its stock value: server connections are shared and switched
    # sqlx (the Rust SDKs) and JDBC send extra_float_digits at startup, which PgBouncer 1.18
    # refuses unless told to ignore it (the setting its docs give for this); nothing else is
    # ignored, so an SDK that relies on another startup parameter shows it.
    "ignore_startup_parameters": "extra_float_digits",
    "admin_users": "postgres",  # SHOW CONFIG on its console: how the tests check the mode
    "log_connections": "0",
    "log_disconnections": "0",
}


@dataclass
class PgBouncer:
    """Started and stopped by the harness, on a free loopback port, as the cluster's user
    (PgBouncer refuses to run as root)."""

    supervisor: Supervisor
    upstream: Server
    root: Path | None = None
    port: int = 0
    process: Helper | None = None

    @property
    def user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def start(self) -> PgBouncer:
        self.root = owned_temp_dir("gauntlet-pgbouncer-", self.user)
        up = conninfo_to_dict(self.upstream.base_dsn)
        (self.root / "users.txt").write_text(f'"{up.get("user", "postgres")}" ""\n')
        for _attempt in range(3):
            self.port = free_port()
            if self._launch():
                return self
            assert self.process is not None
            self.process.kill()
        raise HelperError(f"PgBouncer did not start:\n{self.process.log_tail() if self.process else ''}")

    def _launch(self) -> bool:
        assert self.root is not None
        up = conninfo_to_dict(self.upstream.base_dsn)
        settings = {
            **SETTINGS,
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_file": str(self.root / "users.txt"),
            "logfile": "",
            "pidfile": "",
        }
        ini = "[databases]\n"
        ini += f"* = host={up.get('host', '127.0.0.1')} port={up.get('port', 5432)}\n"
        ini += "[pgbouncer]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        config = self.root / "pgbouncer.ini"
        config.write_text(ini)
        self.process = self.supervisor.spawn("pgbouncer", [BINARY, str(config)], user=self.user)
        return self._wait_ready()

    def exited(self) -> str | None:
        """Why the bouncer is gone (its exit status and last log lines), or None while it runs.
        PgBouncer 1.18.0 can exit on a FATAL assertion in its cancel-request handling
        (pgbouncer/pgbouncer#801, fixed by #846 in 1.19.1): that is the pooler's crash, not the SDK's."""
        if self.process is None or self.process.popen.poll() is None:
            return None
        return f"PgBouncer exited (status {self.process.popen.returncode}); its log ends:\n{self.process.log_tail(5)}"

    def restart(self) -> None:
        """A new bouncer on the same port (the clients' DSNs stay valid), as a service manager
        would restart it: the scenario after a crash meets a working pooler."""
        assert self.process is not None
        self.process.kill()  # reaps it and anything left in its group
        if not self._launch():
            raise HelperError(f"PgBouncer did not start again:\n{self.process.log_tail()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        return wait_ready(self.process, self._listens, READY_BOUND_S)

    def _listens(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def dsn(self, direct_dsn: str) -> str:
        """The same database, reached through the bouncer."""
        return make_conninfo(direct_dsn, host="127.0.0.1", port=str(self.port))

    def stop(self) -> None:
        try:
            if self.process is not None:
                self.process.stop(grace=5.0)  # SIGTERM: PgBouncer's immediate shutdown
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
