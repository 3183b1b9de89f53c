"""pgqueuer through its QueueManager on a psycopg connection. pgqueuer has one queue table;
the protocol's queue is the entrypoint name. Retries are database-level (`RetryRequested`),
so a job's max_attempts can travel with the job; terminal failures are held ('failed')."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "_shared" / "python"))

import gauntlet_protocol as p
import pgqueuer
from pgqueuer import PsycopgDriver, Queries, QueueManager, RetryRequested
from pgqueuer.models import Job
from psycopg import AsyncConnection, Rollback

CAPABILITIES = [
    "priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue",
    "visibility_timeout", "crash_recovery", "listen_notify", "worker",
]  # fmt: skip


async def connect() -> AsyncConnection:
    return await AsyncConnection.connect(p.CONFIG["dsn"], autocommit=True)  # pgqueuer requires autocommit


def info() -> None:
    p.emit({"protocol": p.PROTOCOL, "sdk": "pgqueuer-py", "system": "pgqueuer", "language": "python",
            "version": "1.6.0", "capabilities": CAPABILITIES})  # fmt: skip


def prepare() -> None:
    p.emit({"ok": True})  # an entrypoint needs no objects of its own


async def enqueue() -> None:
    mode = p.CONFIG.get("transaction")
    async with await connect() as conn:
        queries = Queries(PsycopgDriver(conn))

        async def send(spec: dict[str, Any]) -> int:
            # max_attempts rides in the payload, beside the body every worker understands.
            payload = {"body": p.body(spec), "max_attempts": int(spec.get("max_attempts") or 1)}
            (job_id,) = await queries.enqueue(
                p.CONFIG["queue"],
                json.dumps(payload).encode(),
                priority=int(spec.get("priority") or 0),  # higher first, as normalised
                execute_after=timedelta(milliseconds=int(spec.get("delay_ms") or 0)),
                dedupe_key=spec.get("dedupe_key"),
            )
            return job_id

        if not mode:
            await p.acknowledge_each_async(send)
            return
        async with conn.transaction():  # the caller's transaction, around pgqueuer's inserts
            await p.acknowledge_each_async(send, in_transaction=True)
            if mode == "rollback":
                raise Rollback()
        p.transaction_outcome(mode)


async def work() -> None:
    history = p.History(p.CONFIG.get("history", ""), p.CONFIG.get("worker", "w"))

    @asynccontextmanager
    async def queue_manager() -> AsyncIterator[QueueManager]:
        async with await connect() as conn:
            manager = QueueManager(Queries(PsycopgDriver(conn)))

            @manager.entrypoint(p.CONFIG["queue"], on_failure="hold")
            async def run(job: Job) -> None:
                message = json.loads(job.payload or b"{}")
                attempt = job.attempts + 1
                if await p.execute_async(history, message.get("body"), attempt, str(job.id)):
                    return
                if attempt < int(message.get("max_attempts") or 1):
                    raise RetryRequested(delay=timedelta(seconds=attempt), reason="fails by script")
                raise p.JobFailed(f"attempt {attempt} fails by script; no attempts left")

            yield manager

    # pgqueuer.run is `pgq run` without the CLI: SIGTERM drains, and with restart_on_failure a
    # manager whose connection broke is replaced (a QueueManager lives on one connection).
    # pgqueuer insists on max_concurrent_tasks >= 2 * batch_size: one slot is two here.
    await pgqueuer.run(
        queue_manager,
        dequeue_timeout=timedelta(milliseconds=int(p.CONFIG.get("poll_interval_ms", 500))),
        batch_size=1,
        max_concurrent_tasks=max(2, int(p.CONFIG.get("concurrency", 1))),
        heartbeat_timeout=timedelta(seconds=float(p.CONFIG.get("visibility_timeout_s", 30))),
        restart_on_failure=True,
        restart_delay=timedelta(seconds=1),
    )


async def stats() -> None:
    async with await connect() as conn:
        cursor = await conn.execute(
            "SELECT status::text, count(*) FROM pgqueuer WHERE entrypoint = %s GROUP BY 1", (p.CONFIG["queue"],)
        )
        live = dict(await cursor.fetchall())
        cursor = await conn.execute(
            "SELECT count(DISTINCT job_id) FROM pgqueuer_log WHERE entrypoint = %s AND status = 'successful'",
            (p.CONFIG["queue"],),
        )
        (succeeded,) = await cursor.fetchone()
    p.emit({"queued": live.get("queued", 0), "running": live.get("picked", 0), "succeeded": succeeded,
            "failed": live.get("failed", 0), "dead": None})  # fmt: skip


if __name__ == "__main__":
    p.main({"info": info, "prepare": prepare, "enqueue": enqueue, "work": work, "stats": stats})
