"""pgqueuer through its QueueManager on one asyncpg connection (AsyncpgDriver), the driver
pgqueuer's CLI and quick start default to. pgqueuer has one queue table; the protocol's queue
is the entrypoint name. Retries are database-level (`RetryRequested`), so a job's max_attempts
can travel with the job; terminal failures are held ('failed')."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared" / "python"))

import asyncpg
import gauntlet_protocol as p
import pgqueuer
from pgqueuer import AsyncpgDriver, PgQueuer, Queries, QueueManager, RetryRequested
from pgqueuer.models import Job, Schedule

# Queries.enqueue takes lists (pgqueuer/adapters/persistence/queries.py:323), one INSERT with every
# field per job; a dedupe key already taken fails that INSERT whole, so a spec with a dedupe key
# goes alone (batch_key) and is refused on its own, as with a single enqueue.
CAPABILITIES = [
    "priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue", "batch_enqueue",
    "visibility_timeout", "crash_recovery", "listen_notify", "periodic", "worker",
]  # fmt: skip
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
CLOSE_BOUND_S = 5.0  # a connection behind a half-open proxy must not hold up the exit


@asynccontextmanager
async def connect() -> AsyncIterator[asyncpg.Connection]:
    # asyncpg is in autocommit mode outside an explicit transaction, as pgqueuer requires.
    # Behind PgBouncer: asyncpg's documented setting for it (manifest tuning, topology pgbouncer).
    conn = await asyncpg.connect(p.CONFIG["dsn"], **({"statement_cache_size": 0} if p.pooler() else {}))
    try:
        yield conn
    finally:
        try:
            await conn.close(timeout=CLOSE_BOUND_S)  # asyncpg aborts the connection if this fails
        except Exception as exc:
            print(f"connection close failed, aborted: {exc!r}", file=sys.stderr, flush=True)


def info() -> None:
    p.emit({"protocol": p.PROTOCOL, "capabilities": CAPABILITIES})


def prepare() -> None:
    p.emit({"ok": True})  # an entrypoint needs no objects of its own


def enqueue_args(spec: dict[str, Any]) -> dict[str, Any]:
    """Queries.enqueue's arguments for one spec; a batch passes each as a list."""
    # max_attempts rides in the payload, beside the body every worker understands.
    payload = {"body": p.body(spec), "max_attempts": int(spec.get("max_attempts") or 1)}
    return {
        "entrypoint": p.CONFIG["queue"],
        "payload": json.dumps(payload).encode(),
        "priority": int(spec.get("priority") or 0),  # higher first, as normalised
        "execute_after": timedelta(milliseconds=int(spec.get("delay_ms") or 0)),
        "dedupe_key": spec.get("dedupe_key"),
    }


def batch_key(spec: dict[str, Any]) -> str | None:
    return spec["id"] if spec.get("dedupe_key") else None


async def enqueue() -> None:
    mode = p.CONFIG.get("transaction")
    async with connect() as conn:
        queries = Queries(AsyncpgDriver(conn))

        async def send(spec: dict[str, Any]) -> int:
            (job_id,) = await queries.enqueue(**enqueue_args(spec))
            return job_id

        async def send_batch(specs: list[dict[str, Any]]) -> list[int]:
            each = [enqueue_args(spec) for spec in specs]
            return await queries.enqueue(**{name: [args[name] for args in each] for name in each[0]})

        if not mode:
            await p.acknowledge_async(send, send_batch, key=batch_key)
            return
        # The caller's transaction on the caller's connection: pgqueuer's inserts run inside it.
        transaction = conn.transaction()
        await transaction.start()
        try:
            await p.acknowledge_async(send, send_batch, key=batch_key, in_transaction=True)
        except BaseException:
            await transaction.rollback()
            raise
        await (transaction.commit() if mode == "commit" else transaction.rollback())
        p.transaction_outcome(mode)


async def work() -> None:
    # pgqueuer logs through the "pgqueuer" logger (a NullHandler only): send its warnings and
    # errors (failed flushes, restarts) to stderr, the driver's log; stdout is the protocol's.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format=LOG_FORMAT)
    history = p.History(p.CONFIG.get("history", ""), p.CONFIG.get("worker", "w"))
    concurrency = int(p.CONFIG.get("concurrency", 1))

    @asynccontextmanager
    async def queue_manager() -> AsyncIterator[QueueManager | PgQueuer]:
        async with connect() as conn:
            every = p.periodic_every_s()
            # With a periodic job: PgQueuer, pgqueuer's QueueManager and SchedulerManager on one connection.
            manager = PgQueuer(AsyncpgDriver(conn)) if every else QueueManager(Queries(AsyncpgDriver(conn)))

            @manager.entrypoint(p.CONFIG["queue"], on_failure="hold", concurrency_limit=1 if concurrency == 1 else 0)
            async def run(job: Job) -> None:
                message = json.loads(job.payload or b"{}")
                attempt = job.attempts + 1
                if await p.execute_async(history, message.get("body"), attempt, str(job.id)):
                    return
                if attempt < int(message.get("max_attempts") or 1):
                    raise RetryRequested(delay=timedelta(seconds=attempt), reason="fails by script")
                raise p.JobFailed(f"attempt {attempt} fails by script; no attempts left")

            if every and isinstance(manager, PgQueuer):
                # Every worker's scheduler polls pgqueuer_schedules; FOR UPDATE SKIP LOCKED and the
                # next_run it sets in the same statement let one take each tick. The function runs in
                # the scheduler (no queued job); the Schedule names no tick: the grid's, at its start.
                @manager.schedule(f"{p.CONFIG['queue']}_periodic", p.croniter_expression(every))
                async def tick(schedule: Schedule) -> None:
                    await p.execute_async(history, p.periodic_body(p.grid_tick(every)), 1, str(schedule.id))

            yield manager

    # pgqueuer.run is `pgq run` without the CLI: SIGTERM drains, and with restart_on_failure a
    # manager whose connection broke is replaced (a QueueManager lives on one connection).
    # A worker's own cap is max_concurrent_tasks, which pgqueuer wants >= 2 * batch_size (and
    # batch_size >= 1), so it cannot be 1: concurrency 1 is the entrypoint's concurrency_limit=1
    # instead, which pgqueuer enforces in SQL across every worker of the queue (one at a time).
    await pgqueuer.run(
        queue_manager,
        dequeue_timeout=timedelta(milliseconds=int(p.CONFIG.get("poll_interval_ms", 500))),
        batch_size=1,
        max_concurrent_tasks=max(2, concurrency),
        heartbeat_timeout=timedelta(seconds=float(p.CONFIG.get("visibility_timeout_s", 30))),
        restart_on_failure=True,
        restart_delay=timedelta(seconds=1),
    )


if __name__ == "__main__":
    p.main({"info": info, "prepare": prepare, "enqueue": enqueue, "work": work})
