"""River's Python client (PyPI `riverqueue`), which only inserts: its jobs are worked by the
Go client (`works_with` in info), so the catalog runs Python inserts against a Go worker.
Args are the protocol's body under River's kind "gauntlet", as the Go driver defines it."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared" / "python"))

import gauntlet_protocol as p
import riverqueue
import sqlalchemy
from riverqueue.driver import riversqlalchemy

# Enqueue-side capabilities are this client's; the worker-side ones are river-go's. No
# batch_enqueue: insert_many / insert_many_tx (riverqueue/client.py:252, :506) return only the
# number of jobs inserted, no job ids, so a batch could not be acknowledged spec by spec.
CAPABILITIES = ["priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue", "visibility_timeout",
                "crash_recovery", "listen_notify"]  # fmt: skip


@dataclass
class GauntletArgs:
    body: dict[str, Any]
    kind: str = "gauntlet"

    def to_json(self) -> str:
        return json.dumps(self.body)


def engine() -> sqlalchemy.Engine:
    url = sqlalchemy.make_url(p.CONFIG["dsn"]).set(drivername="postgresql+psycopg")
    # Behind PgBouncer: psycopg's pooler setting through SQLAlchemy's connect_args (manifest
    # tuning, topology pgbouncer); none otherwise.
    return sqlalchemy.create_engine(
        url, pool_size=int(p.CONFIG.get("pool_size", 2)), connect_args=p.psycopg_pooler_kwargs()
    )


def insert_opts(spec: dict[str, Any]) -> riverqueue.InsertOpts:
    delay = int(spec.get("delay_ms") or 0)
    return riverqueue.InsertOpts(
        queue=p.CONFIG["queue"],
        priority=4 - max(0, min(3, int(spec.get("priority") or 0))),  # River: 1 runs first
        max_attempts=spec.get("max_attempts"),
        scheduled_at=datetime.now(UTC) + timedelta(milliseconds=delay) if delay else None,
        # riverqueue 0.7.0 is unique over the whole args only (no per-field key as in Go).
        unique_opts=riverqueue.UniqueOpts(by_args=True, by_queue=True) if spec.get("dedupe_key") else None,
    )


def info() -> None:
    p.emit({"protocol": p.PROTOCOL, "capabilities": CAPABILITIES, "works_with": "river-go"})


def prepare() -> None:
    p.emit({"ok": True})  # River queues are made by the first job or worker


def send(insert: Any, spec: dict[str, Any]) -> int:
    body = p.body(spec)
    if spec.get("dedupe_key"):
        body["dedupe_key"] = spec["dedupe_key"]
    result = insert(GauntletArgs(body), insert_opts=insert_opts(spec))
    if result.unique_skipped_as_duplicated:
        raise RuntimeError(f"refused: job {result.job.id} holds dedupe key {spec['dedupe_key']!r}")
    return result.job.id


def enqueue() -> None:
    made = engine()
    client = riverqueue.Client(riversqlalchemy.Driver(made))
    mode = p.CONFIG.get("transaction")
    try:
        if not mode:
            p.acknowledge_each(lambda spec: send(client.insert, spec))
            return
        with made.connect() as conn:
            transaction = conn.begin()
            insert_tx = lambda *args, **kwargs: client.insert_tx(conn, *args, **kwargs)  # noqa: E731
            p.acknowledge_each(lambda spec: send(insert_tx, spec), in_transaction=True)
            transaction.commit() if mode == "commit" else transaction.rollback()
        p.transaction_outcome(mode)
    finally:
        made.dispose()


if __name__ == "__main__":
    p.main({"info": info, "prepare": prepare, "enqueue": enqueue})
