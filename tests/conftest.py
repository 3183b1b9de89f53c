"""Leak detection shared by the harness's own tests."""

from __future__ import annotations

import os
import pwd
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from gauntlet.pg import DISK_TMP, MEMORY_FS


def postgres_pids(roots: list[str] | None = None) -> set[int]:
    """PostgreSQL processes; with `roots`, only those of clusters under those directories
    (every postgres process has its data directory as its cwd), so other clusters running
    on the machine at the same time are not mistaken for leaks."""
    uid = pwd.getpwnam("postgres").pw_uid
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if proc.stat().st_uid != uid or not (proc / "cmdline").read_bytes():
                    continue
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if roots is None or any(cwd.startswith(root) for root in roots):
                pids.add(int(proc.name))
    return pids


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes once its parent (the test) stops caring.
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def harness_dirs() -> set[str]:
    return {str(p) for parent in (DISK_TMP, MEMORY_FS) for p in parent.glob("gauntlet-*")}


@dataclass
class LeakCheck:
    pg_pids: set[int]
    dirs: set[str]

    def assert_clean(
        self,
        pids: list[int] = (),
        ports: list[int] = (),
        roots: list[str] = (),
        bound_s: float = 10.0,  # type: ignore[assignment]
    ) -> None:
        """Everything started since the snapshot is gone (backends get a moment to notice)."""
        deadline = time.monotonic() + bound_s
        while True:
            left_pg = postgres_pids(list(roots) or None) - self.pg_pids
            left_pids = [p for p in pids if pid_alive(p)]
            left_ports = [p for p in ports if port_open(p)]
            left_dirs = harness_dirs() - self.dirs
            if not (left_pg or left_pids or left_ports or left_dirs):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"left behind: postgres pids {left_pg}, pids {left_pids}, ports {left_ports}, dirs {left_dirs}"
                )
            time.sleep(0.1)


@pytest.fixture
def leak_check() -> LeakCheck:
    return LeakCheck(postgres_pids(), harness_dirs())


@pytest.fixture
def pgtap_dsn(harness) -> str:
    """A fresh database with the pgtap extension, for suites written in the test."""

    def prepare(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pgtap")

    return harness.databases.dsn(harness.databases.fresh(harness.databases.template("pgtap_only", prepare)))
