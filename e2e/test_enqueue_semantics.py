"""Enqueue-side guarantees: transactions, delays, dedupe keys."""

from __future__ import annotations

import time

import pytest

from gauntlet.checker import History, delay_reference, runs_by_job

from .workload import ACK_SLACK_S, LATE_SLACK_S, Workload, assert_holds

# A driver that lets one rolled-back job in 20 through goes unseen with probability
# (19/20)^ROLLED_BACK: 3.5e-5 for 200 jobs (10, as before, missed it 60 % of the time).
ROLLED_BACK = 200


@pytest.mark.needs("worker", "tx_enqueue")
def test_transactional_enqueue_rollback(workload: Workload) -> None:
    """Jobs enqueued in a transaction that is rolled back never run, and are not queued."""
    result = workload.enqueue(workload.specs(ROLLED_BACK), transaction="rollback")
    assert result.transaction == "rolled_back", result
    workload.enqueue(workload.specs(20))  # committed canaries, so the worker is seen working
    workload.compare_stats("after the rollback, before any worker starts")  # a leaked job is queued
    workload.start(1, concurrency=3)
    workload.wait_until_done(30, settle_s=2.0)
    workload.stop_all()
    report = workload.report()
    assert report.unexpected == [], f"rolled-back jobs ran: {len(report.unexpected)}: {report.unexpected[:5]}"
    assert_holds(report, "lost", "stuck", "stats_mismatches")


@pytest.mark.needs("worker", "tx_enqueue")
def test_transactional_enqueue_commit(workload: Workload) -> None:
    """Jobs enqueued in a committed transaction all run."""
    result = workload.enqueue(workload.specs(10), transaction="commit")
    assert result.transaction == "committed", result
    workload.start(1, concurrency=3)
    workload.wait_until_done(30, settle_s=0.3)
    workload.stop_all()
    report = workload.report()
    assert report.acknowledged == 10, f"acknowledged {report.acknowledged} of 10: {workload.refusals[:3]}"
    assert_holds(report, "lost", "duplicated")


# Long enough that a driver honouring 80 % of each delay starts 0.6 s early: more than
# twice the harness's slack in timing an acknowledgement (ACK_SLACK_S). The contract's
# granularity bounds lateness only: no system may start a delayed job early.
DELAY_S = 3.0


@pytest.mark.needs("worker", "delay")
def test_delayed_jobs(workload: Workload) -> None:
    """A job delayed by d never starts before d has passed since the SDK acknowledged it, nor
    later than the contract's delay granularity after; while the delayed jobs wait, the
    system's stats count them."""
    delayed = workload.specs(10, delay_ms=int(DELAY_S * 1000))
    workload.start(1, concurrency=4)
    workload.enqueue(delayed + workload.specs(10))
    acked = [workload.enqueued[s["id"]] for s in delayed]
    due = min((e.acked_at or e.sent_at) for e in acked) + DELAY_S - ACK_SLACK_S
    waiting = {s["id"] for s in delayed}

    def undelayed_done(history: History) -> bool:
        done = {r.id for r in history.executions if r.outcome == "ok"}
        return {i for i, e in workload.enqueued.items() if e.outcome == "ok"} - waiting <= done

    if workload.wait_for(undelayed_done, bound_s=max(0.0, due - time.time())):
        workload.compare_stats(
            "while delayed jobs wait for their time", while_=lambda _: time.time() < due, bound_s=DELAY_S
        )
    workload.wait_until_done(30)
    workload.stop_all()
    runs = runs_by_job(workload.history())
    offsets = [runs[e.id][0].start - delay_reference(e) - DELAY_S for e in acked if e.id in runs]
    if offsets:  # start minus due time: never below 0 (less the ack slack), at most the granularity
        workload.record("delay_offset_s", f"{min(offsets):.3f}..{max(offsets):.3f}")
    report = workload.report(
        delay_tolerance_s=ACK_SLACK_S, delay_late_s=workload.contract.delay_granularity_s + LATE_SLACK_S
    )
    assert report.delay_violations == {}, f"started early (s): {report.delay_violations}"
    if report.late_delays:
        contract = workload.contract
        report.notes.insert(
            0,
            f"allowed: the contract's delay granularity {contract.delay_granularity_s:g} s"
            f" ({contract.delay_source or 'no source'}) + {LATE_SLACK_S:g} s",
        )
    assert_holds(report, "lost", "late_delays", "stats_mismatches")


# Keys that differ only in case or accents are different keys (PostgreSQL compares text
# byte for byte): a driver that folds them runs one job where several are due.
DEDUPE_KEYS = ("same-key", "Same-Key", "SAME-KEY", "same-kéy")


@pytest.mark.needs("worker", "dedupe")
def test_dedupe_keys(workload: Workload) -> None:
    """Jobs sharing a dedupe key while one is live run once: once per distinct key."""
    specs = [spec for _ in range(3) for key in DEDUPE_KEYS for spec in workload.specs(1, dedupe_key=key)]
    result = workload.enqueue(specs)
    accepted = [a for a in result.acks if a.ok]
    key_of = {s["id"]: s["dedupe_key"] for s in specs}

    def every_key_ran(history: History) -> bool:
        return {key_of.get(r.id) for r in history.executions if r.outcome == "ok"} >= set(DEDUPE_KEYS)

    workload.start(1, concurrency=2)
    # An SDK may keep the acknowledged duplicates (never to run) or drop them: wait for one run
    # per key, not for every acknowledged job, then long enough for a second run to show.
    workload.wait_for(every_key_ran, bound_s=30)
    time.sleep(1.0)
    workload.stop_all()
    runs = {key: 0 for key in DEDUPE_KEYS}
    for run in workload.history().executions:
        if run.outcome == "ok" and run.id in key_of:
            runs[key_of[run.id]] += 1
    workload.record("accepted", len(accepted))
    refusals = sorted({(a.error or "")[:200] for a in result.acks if not a.ok})
    wrong = {key: n for key, n in runs.items() if n != 1}
    assert not wrong, (
        f"executions for one dedupe key, expected 1 each: {wrong} ({len(accepted)} of {len(specs)} enqueues"
        f" accepted; refusals: {refusals})"
    )
