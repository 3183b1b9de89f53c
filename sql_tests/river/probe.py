"""River fetches jobs from Go; its query is sqlc's `jobGetAvailable` constant in the pinned
riverpgxv5 module. Installed as river_fetch(queue, max, worker) so pgTAP can race River's
own SQL, not a copy of it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from gauntlet import catalog

MODULE = "github.com/riverqueue/river/riverdriver/riverpgxv5"


def fetch_query() -> str:
    folder = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", MODULE],
        cwd=catalog.load().system("river").installer.folder,  # the migrator's go.mod pins riverpgxv5
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    source = Path(folder, "internal", "dbsqlc", "river_job.sql.go").read_text(encoding="utf-8")
    found = re.search(r"const jobGetAvailable = `(.*?)`", source, re.S)
    if not found:
        raise RuntimeError(f"jobGetAvailable not found in {folder}")
    return found.group(1).replace("/* TEMPLATE: schema */", "")


def install(dsn: str) -> None:
    # $1 now, $2 max_attempted_by, $3 attempted_by, $4 queue, $5 kinds, $6 max_to_lock
    body = sql.SQL(
        "BEGIN RETURN QUERY EXECUTE {} USING NULL::timestamptz, 100, worker, queue, NULL::text[], max_to_lock; END"
    ).format(sql.Literal(f"WITH fetched AS ({fetch_query()}) SELECT fetched.id FROM fetched ORDER BY fetched.id"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION public.river_fetch(queue text, max_to_lock int, worker text) "
                "RETURNS TABLE(id bigint) LANGUAGE plpgsql AS {}"
            ).format(sql.Literal(body.as_string(conn)))
        )
