"""procrastinate through its own App, task, retry strategy and worker. A stalled-job sweeper,
built from `JobManager.get_stalled_jobs` and `retry_job` as procrastinate's docs recommend,
gives crashed workers' jobs back: procrastinate does not do that on its own."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared" / "python"))

import gauntlet_protocol as p
from procrastinate import App, BaseRetryStrategy, PsycopgConnector, RetryDecision
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Job
from psycopg import AsyncConnection

# batch_defer_async (procrastinate/jobs.py:200) defers many jobs of one configured task: the
# priority, schedule and queueing lock are the deferrer's, so a group holds specs that share them
# (batch_key); a spec with a dedupe key goes alone, as a taken lock fails the whole batch.
CAPABILITIES = [
    "priority", "fifo", "retries", "dead_letter", "delay", "dedupe", "tx_enqueue", "batch_enqueue",
    "crash_recovery", "listen_notify", "periodic", "worker", "upgrade",
]  # fmt: skip
TASK = "gauntlet"


class PerJobAttempts(BaseRetryStrategy):
    """procrastinate's retry limit is per task; the protocol's max_attempts is per job, so it
    travels in the task's arguments. Backoff: 1 s, 2 s, 3 s…"""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if job.attempts + 1 >= int(job.task_kwargs.get("max_attempts") or 1):
            return None
        return RetryDecision(retry_in={"seconds": job.attempts + 1})


def make_app(pool_size: int) -> tuple[App, p.History]:
    # Behind PgBouncer: psycopg's pooler setting on the pool's connections (the connector passes
    # `kwargs` to psycopg_pool, psycopg_connector.py:56-107; manifest tuning, topology pgbouncer).
    extra = {"kwargs": p.psycopg_pooler_kwargs()} if p.pooler() else {}
    app = App(connector=PsycopgConnector(conninfo=p.CONFIG["dsn"], min_size=1, max_size=pool_size, **extra))
    history = p.History(p.CONFIG.get("history", ""), p.CONFIG.get("worker", "w"))

    @app.task(name=TASK, pass_context=True, retry=PerJobAttempts())
    async def run(context: Any, body: Any, max_attempts: int) -> None:
        job = context.job
        if not await p.execute_async(history, body, job.attempts + 1, str(job.id)):
            raise p.JobFailed(f"attempt {job.attempts + 1} fails by script")

    if every := p.periodic_every_s():
        # Every worker's periodic deferrer defers each tick; procrastinate_periodic_defers keeps
        # one job per (task, periodic_id, timestamp), and the job's `timestamp` names its tick.
        @app.periodic(cron=p.croniter_expression(every), periodic_id=TASK, queue=p.CONFIG["queue"])
        @app.task(name=f"{TASK}_periodic", pass_context=True)
        async def tick(context: Any, timestamp: int) -> None:
            job = context.job
            await p.execute_async(history, p.periodic_body(timestamp), job.attempts + 1, str(job.id))

    return app, history


def info() -> None:
    p.emit({"protocol": p.PROTOCOL, "capabilities": CAPABILITIES})


def prepare() -> None:
    p.emit({"ok": True})  # procrastinate queues are just names on jobs


def task_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    return {"body": p.body(spec), "max_attempts": int(spec.get("max_attempts") or 1)}


def batch_key(spec: dict[str, Any]) -> Any:
    """What a deferrer fixes for all its jobs; a spec with a dedupe key is a group of its own."""
    return (
        int(spec.get("priority") or 0),
        int(spec.get("delay_ms") or 0),
        spec["id"] if spec.get("dedupe_key") else None,
    )


async def enqueue() -> None:
    app, _ = make_app(int(p.CONFIG.get("pool_size", 2)))
    mode = p.CONFIG.get("transaction")
    async with app.open_async():

        def deferrer(spec: dict[str, Any], connection: AsyncConnection | None) -> Any:
            return app.configure_task(
                TASK,
                queue=p.CONFIG["queue"],
                priority=int(spec.get("priority") or 0),  # higher first, as normalised
                schedule_in={"milliseconds": int(spec.get("delay_ms") or 0)},
                queueing_lock=spec.get("dedupe_key"),
                connection=connection,
            )

        async def send(spec: dict[str, Any], connection: AsyncConnection | None = None) -> int:
            try:
                return await deferrer(spec, connection).defer_async(**task_kwargs(spec))
            except AlreadyEnqueued as exc:
                raise RuntimeError(f"refused by queueing_lock {spec['dedupe_key']!r}: {exc}") from exc

        async def send_batch(specs: list[dict[str, Any]], connection: AsyncConnection | None = None) -> list[int]:
            # The group shares batch_key, so its first spec configures the deferrer for all.
            try:
                return await deferrer(specs[0], connection).batch_defer_async(*(task_kwargs(s) for s in specs))
            except AlreadyEnqueued as exc:
                raise RuntimeError(f"refused by queueing_lock {specs[0]['dedupe_key']!r}: {exc}") from exc

        if not mode:
            await p.acknowledge_async(send, send_batch, key=batch_key)
            return
        async with await AsyncConnection.connect(p.CONFIG["dsn"], **p.psycopg_pooler_kwargs()) as conn:
            await p.acknowledge_async(
                lambda spec: send(spec, conn), lambda specs: send_batch(specs, conn), key=batch_key, in_transaction=True
            )
            await (conn.commit() if mode == "commit" else conn.rollback())
        p.transaction_outcome(mode)


async def sweep_stalled(app: App, stalled_after_s: float) -> None:
    while True:
        await asyncio.sleep(stalled_after_s / 2)
        try:
            for job in await app.job_manager.get_stalled_jobs(
                queue=p.CONFIG["queue"], seconds_since_heartbeat=stalled_after_s
            ):
                await app.job_manager.retry_job(job)
        except Exception as exc:  # a fault on the sweeper's connection: try again next round
            print(f"stalled-job sweep failed: {exc!r}", file=sys.stderr, flush=True)


async def work() -> None:
    concurrency = int(p.CONFIG.get("concurrency", 1))
    app, _ = make_app(int(p.CONFIG.get("pool_size", concurrency + 1)))
    stalled_after = float(p.CONFIG.get("visibility_timeout_s", 30))
    async with app.open_async():
        sweeper = asyncio.create_task(sweep_stalled(app, stalled_after))
        try:
            await app.run_worker_async(
                queues=[p.CONFIG["queue"]],
                name=p.CONFIG.get("worker", "w"),
                concurrency=concurrency,
                fetch_job_polling_interval=float(p.CONFIG.get("poll_interval_ms", 500)) / 1000,
                listen_notify=not p.pooler(),  # LISTEN does not work through PgBouncer in transaction mode
                update_heartbeat_interval=stalled_after / 4,
                stalled_worker_timeout=stalled_after,
                delete_jobs="never",
                install_signal_handlers=True,  # SIGTERM: stop fetching, finish the jobs in flight
            )
        finally:
            sweeper.cancel()


if __name__ == "__main__":
    p.main({"info": info, "prepare": prepare, "enqueue": enqueue, "work": work})
