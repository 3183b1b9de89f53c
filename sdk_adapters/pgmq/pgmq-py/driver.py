"""PGMQ through its Python SDK (PyPI `pgmq`). PGMQ has no worker loop, so this is a small one
made of the SDK's own calls: read with a visibility timeout, archive on success, and on
failure leave the message to reappear when its visibility timeout runs out."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared" / "python"))

import gauntlet_protocol as p
from pgmq import PGMQueue
from psycopg_pool import ConnectionPool

# send_batch (pgmq/sync_operations.py:204) takes one delay for the whole batch: a group holds
# specs of one delay_ms only (the key below); like send, it takes the caller's connection.
CAPABILITIES = ["fifo", "delay", "tx_enqueue", "batch_enqueue", "visibility_timeout", "crash_recovery", "worker"]


def queue_client(pool_size: int | None = None) -> PGMQueue:
    # init_extension=False: the schema comes from the harness; the SDK must not CREATE EXTENSION.
    size = pool_size or int(p.CONFIG.get("pool_size", 4))
    pool = None
    if p.pooler():
        # Behind PgBouncer: PGMQueue takes the caller's pool (pgmq/queue.py:40-45), made as its
        # own is (:49-54) but with psycopg's pooler setting (manifest tuning, topology pgbouncer).
        pool = ConnectionPool(p.CONFIG["dsn"], min_size=1, max_size=size, open=True, kwargs=p.psycopg_pooler_kwargs())
    return PGMQueue(conn_string=p.CONFIG["dsn"], pool_size=size, init_extension=False, pool=pool)


def close(client: PGMQueue) -> None:
    """client.close() closes only a pool the client made itself (pgmq/queue.py:56-60)."""
    pool = client.pool
    client.close()
    if pool is not None and not pool.closed:
        pool.close()


def info() -> None:
    p.emit({"protocol": p.PROTOCOL, "capabilities": CAPABILITIES})


def prepare() -> None:
    client = queue_client(1)
    try:
        client.create_queue(p.CONFIG["queue"])
    finally:
        close(client)
    p.emit({"ok": True})


def _delay(spec: dict) -> datetime | None:
    if spec.get("delay_ms"):
        return datetime.now(UTC) + timedelta(milliseconds=int(spec["delay_ms"]))
    return None


def _delay_key(spec: dict) -> int:
    return int(spec.get("delay_ms") or 0)


def _send(client: PGMQueue, spec: dict, conn=None) -> int:
    return client.send(p.CONFIG["queue"], p.body(spec), delay=_delay(spec), conn=conn)


def _send_batch(client: PGMQueue, specs: list[dict], conn=None) -> list[int]:
    """One send_batch per group; the group shares its delay (_delay_key)."""
    return client.send_batch(p.CONFIG["queue"], [p.body(s) for s in specs], delay=_delay(specs[0]), conn=conn)


def enqueue() -> None:
    client = queue_client(2)
    mode = p.CONFIG.get("transaction")
    try:
        if not mode:
            p.acknowledge(lambda spec: _send(client, spec), lambda specs: _send_batch(client, specs), key=_delay_key)
            return
        with client.pool.connection() as conn:
            conn.autocommit = False
            p.acknowledge(
                lambda spec: _send(client, spec, conn=conn),
                lambda specs: _send_batch(client, specs, conn=conn),
                key=_delay_key,
                in_transaction=True,
            )
            if mode == "commit":
                conn.commit()
            else:
                conn.rollback()
            p.transaction_outcome(mode)
    finally:
        close(client)


def work() -> None:
    queue = p.CONFIG["queue"]
    vt = int(p.CONFIG.get("visibility_timeout_s", 30))
    client = queue_client(int(p.CONFIG.get("pool_size", int(p.CONFIG.get("concurrency", 1)) + 1)))
    history = p.History(p.CONFIG.get("history", ""), p.CONFIG.get("worker", "w"))

    def slot() -> bool:
        message = client.read(queue, vt=vt)
        if message is None:
            return False
        if p.execute(history, message.message, message.read_ct, str(message.msg_id)):
            client.archive(queue, message.msg_id)
        return True

    try:
        p.run_slots(slot)
    finally:
        close(client)


if __name__ == "__main__":
    p.main({"info": info, "prepare": prepare, "enqueue": enqueue, "work": work})
