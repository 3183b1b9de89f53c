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

CAPABILITIES = ["fifo", "delay", "tx_enqueue", "visibility_timeout", "crash_recovery", "worker"]


def queue_client(pool_size: int | None = None) -> PGMQueue:
    # init_extension=False: the schema comes from the harness; the SDK must not CREATE EXTENSION.
    return PGMQueue(
        conn_string=p.CONFIG["dsn"], pool_size=pool_size or int(p.CONFIG.get("pool_size", 4)), init_extension=False
    )


def info() -> None:
    p.emit({"protocol": p.PROTOCOL, "capabilities": CAPABILITIES})


def prepare() -> None:
    client = queue_client(1)
    try:
        client.create_queue(p.CONFIG["queue"])
    finally:
        client.close()
    p.emit({"ok": True})


def _send(client: PGMQueue, spec: dict, conn=None) -> int:
    delay = None
    if spec.get("delay_ms"):
        delay = datetime.now(UTC) + timedelta(milliseconds=int(spec["delay_ms"]))
    return client.send(p.CONFIG["queue"], p.body(spec), delay=delay, conn=conn)


def enqueue() -> None:
    client = queue_client(2)
    mode = p.CONFIG.get("transaction")
    try:
        if not mode:
            p.acknowledge_each(lambda spec: _send(client, spec))
            return
        with client.pool.connection() as conn:
            conn.autocommit = False
            p.acknowledge_each(lambda spec: _send(client, spec, conn=conn), in_transaction=True)
            if mode == "commit":
                conn.commit()
            else:
                conn.rollback()
            p.transaction_outcome(mode)
    finally:
        client.close()


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
        client.close()


if __name__ == "__main__":
    p.main({"info": info, "prepare": prepare, "enqueue": enqueue, "work": work})
