"""Bad input gets a clear error and loses nothing else."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from gauntlet.checker import Enqueued
from gauntlet.driver import Driver, DriverError

from .workload import Workload, assert_holds


@pytest.mark.needs("worker")
def test_malformed_specs_are_refused_and_the_rest_runs(workload: Workload) -> None:
    good = workload.specs(10)
    lines: list = [good[0], "{not json", good[1], "[1, 2]", '{"no": "id"}', *good[2:]]
    sent_at = time.time()
    sent = workload.driver.enqueue(lines)
    refused = [a for a in sent.acks if a.id is None]
    assert len(refused) == 3 and all(a.error for a in refused), sent.acks
    workload.enqueued.clear()
    for ack in sent.acks:
        if ack.id is not None:
            workload.enqueued[ack.id] = Enqueued(
                ack.id, "ok" if ack.ok else "fail", sent_at, index=len(workload.enqueued)
            )
    workload.start(1, concurrency=3)
    workload.wait_until_done(30)
    workload.stop_all()
    report = workload.report()
    assert report.acknowledged == 10
    assert_holds(report, "lost", "unexpected", "duplicated")


@pytest.mark.parametrize("hostile", ["pg_hack", "x; drop table jobs", 'q"; --', "ünïcødé", "a" * 200])
def test_hostile_queue_names(driver: Driver, database: str, hostile: str) -> None:
    """A hostile queue name is refused with a clear error or handled safely; the schema and the
    other queue's jobs are untouched either way."""
    driver.enqueue([{"id": "canary", "payload": {}}])
    with psycopg.connect(database) as conn:
        before = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        ).fetchone()[0]
    other = Driver(driver.sdk, driver.supervisor, driver.dsn, hostile)
    try:
        other.prepare()
        other.enqueue([{"id": "h1", "payload": {}}])
        outcome = "accepted"
    except DriverError as exc:
        outcome = "refused"
        assert str(exc).strip(), "refused without a message"
    with psycopg.connect(database) as conn:
        after = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        ).fetchone()[0]
    assert after >= before, "a hostile queue name dropped objects"
    stats = driver.stats()
    assert stats["queued"] == 1, f"the canary job of the other queue is gone: {json.dumps(stats)} ({outcome})"
