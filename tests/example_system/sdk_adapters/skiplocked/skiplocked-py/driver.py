"""skiplocked through psycopg: the driver protocol (sdk_adapters/PROTOCOL.md) over one table.

enqueue inserts rows (in the caller's transaction when one is asked for); work leases the
oldest due row with skiplocked_fetch (FOR UPDATE SKIP LOCKED), runs it, and finishes it with
skiplocked_finish. A worker that dies leaves its row leased; once the lease
(visibility_timeout_s) runs out, the next fetch takes it again. No retries: a failed
attempt ends the job in state 'failed'."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared" / "python"))

import gauntlet_protocol as p
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

CAPABILITIES = ["worker", "fifo", "delay", "tx_enqueue", "visibility_timeout", "crash_recovery"]
INSERT = """INSERT INTO skiplocked_jobs (queue, body, run_after)
            VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s)) RETURNING id"""


def info() -> None:
    p.emit({"protocol": p.PROTOCOL, "capabilities": CAPABILITIES})


def prepare() -> None:
    # Queues are rows, not objects: nothing to create. Check that the schema is there.
    with psycopg.connect(p.CONFIG["dsn"], autocommit=True) as conn:
        conn.execute("SELECT 1 FROM skiplocked_jobs LIMIT 0")
    p.emit({"ok": True})


def _insert(conn: psycopg.Connection, spec: dict) -> int:
    delay_s = int(spec.get("delay_ms") or 0) / 1000
    row = conn.execute(INSERT, (p.CONFIG["queue"], Jsonb(p.body(spec)), delay_s)).fetchone()
    assert row is not None
    return int(row[0])


def enqueue() -> None:
    mode = p.CONFIG.get("transaction")
    with psycopg.connect(p.CONFIG["dsn"], autocommit=not mode) as conn:
        if not mode:
            p.acknowledge_each(lambda spec: _insert(conn, spec))
            return
        try:
            p.acknowledge_each(lambda spec: _insert(conn, spec), in_transaction=True)
        except Exception as exc:
            conn.rollback()
            p.emit({"transaction": "failed", "error": f"{type(exc).__name__}: {exc}"})
            return
        if mode == "commit":
            conn.commit()
        else:
            conn.rollback()
        p.transaction_outcome(mode)


def work() -> None:
    queue = p.CONFIG["queue"]
    worker = p.CONFIG.get("worker", "w")
    lease_s = float(p.CONFIG.get("visibility_timeout_s", 30))
    concurrency = int(p.CONFIG.get("concurrency", 1))
    size = int(p.CONFIG.get("pool_size") or concurrency + 1)
    history = p.History(p.CONFIG.get("history", ""), worker)
    pool = ConnectionPool(p.CONFIG["dsn"], min_size=1, max_size=size, kwargs={"autocommit": True}, open=True)

    def slot() -> bool:
        with pool.connection() as conn:
            row = conn.execute("SELECT * FROM skiplocked_fetch(%s, %s, %s)", (queue, lease_s, worker)).fetchone()
        if row is None:
            return False
        job_id, body, attempt = row
        ok = p.execute(history, body, attempt, str(job_id))  # no connection held while the job runs
        with pool.connection() as conn:
            conn.execute("SELECT skiplocked_finish(%s, %s, %s)", (job_id, attempt, ok))
        return True

    try:
        p.run_slots(slot)
    finally:
        pool.close()


if __name__ == "__main__":
    p.main({"info": info, "prepare": prepare, "enqueue": enqueue, "work": work})
