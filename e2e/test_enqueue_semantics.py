"""Enqueue-side guarantees: transactions, delays, dedupe keys."""

from __future__ import annotations

import time

import pytest

from .workload import Workload, assert_holds


@pytest.mark.needs("worker", "tx_enqueue")
def test_transactional_enqueue_rollback(workload: Workload) -> None:
    """Jobs enqueued in a transaction that is rolled back never run."""
    result = workload.enqueue(workload.specs(10), transaction="rollback")
    assert result.transaction == "rolled_back", result
    workload.enqueue(workload.specs(5))  # a committed canary, so the worker is seen working
    workload.start(1, concurrency=3)
    workload.wait_until_done(30, settle_s=2.0)
    workload.stop_all()
    report = workload.report()
    assert report.unexpected == [], f"rolled-back jobs ran: {report.unexpected}"
    assert_holds(report, "lost")


@pytest.mark.needs("worker", "tx_enqueue")
def test_transactional_enqueue_commit(workload: Workload) -> None:
    """Jobs enqueued in a committed transaction all run."""
    result = workload.enqueue(workload.specs(10), transaction="commit")
    assert result.transaction == "committed", result
    workload.start(1, concurrency=3)
    workload.wait_until_done(30, settle_s=0.3)
    workload.stop_all()
    assert_holds(workload.report(), "lost", "duplicated")


@pytest.mark.needs("worker", "delay")
def test_delayed_jobs(workload: Workload) -> None:
    """A job delayed by d never starts before d has passed."""
    specs = workload.specs(10, delay_ms=1500) + workload.specs(10)
    workload.start(1, concurrency=4)
    workload.enqueue(specs)
    workload.wait_until_done(30)
    workload.stop_all()
    report = workload.report()
    assert report.delay_violations == {}, f"started early (s): {report.delay_violations}"
    assert_holds(report, "lost")


@pytest.mark.needs("worker", "dedupe")
def test_dedupe_keys(workload: Workload) -> None:
    """Jobs sharing a dedupe key while one is live run once."""
    specs = workload.specs(5, dedupe_key="same-key")
    result = workload.enqueue(specs)
    accepted = [a for a in result.acks if a.ok]
    workload.start(1, concurrency=2)
    time.sleep(1.0)
    workload.wait_until_done(30, settle_s=1.0)
    workload.stop_all()
    runs = [r for r in workload.history().executions if r.outcome == "ok"]
    workload.record("accepted", len(accepted))
    refusals = sorted({(a.error or "")[:200] for a in result.acks if not a.ok})
    assert len(runs) == 1, (
        f"{len(runs)} executions for one dedupe key ({len(accepted)} enqueues accepted; refusals: {refusals})"
    )
