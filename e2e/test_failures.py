"""Failures: retries with backoff, dead letters, crashed workers, graceful shutdown."""

from __future__ import annotations

import subprocess
from itertools import pairwise

import pytest

from gauntlet.checker import History, runs_by_job

from .workload import CLOCK_SLACK_S, LEASE_S, Workload


def waiting_for_retry(history: History) -> bool:
    """Some job's last attempt failed and its next has not started."""
    return any(
        runs[-1].outcome == "fail" and (item.max_attempts is None or len(runs) < item.max_attempts)
        for job, runs in runs_by_job(history).items()
        if (item := history.enqueued.get(job)) is not None
    )


@pytest.mark.needs("worker", "retries")
def test_retry_storm(workload: Workload) -> None:
    """Jobs that fail k times are retried with backoff, up to max_attempts, then succeed. No
    retry comes sooner than the contract's shortest gap; while jobs wait for a retry, the
    system's stats still count them as pending."""
    specs = []
    for fail_times in (0, 1, 2):
        specs += workload.specs(10, fail_times=fail_times, max_attempts=5)
    workload.enqueue(specs)
    workload.start(1, concurrency=5)
    quiet = workload.quiet_bound_s()
    if workload.wait_for(waiting_for_retry, bound_s=quiet):
        workload.compare_stats("while jobs wait for a retry", while_=waiting_for_retry, bound_s=quiet)
    workload.wait_until_done(120, settle_s=0.5)  # quiet for longer than the contract's longest backoff: stuck
    workload.stop_all()
    gaps = [
        b.start - (a.end or a.start)
        for runs in runs_by_job(workload.history()).values()
        for a, b in pairwise(runs)
        if a.outcome == "fail"
    ]
    if gaps:  # the shortest retry gap seen: a figure on the cell beside the contract's
        workload.record("retry_gap_min_s", round(min(gaps), 3))
    gap = workload.contract.retry_min_gap_s
    report = workload.report(retries=True, min_backoff_s=max(0.0, gap - CLOCK_SLACK_S))
    judged = ["attempt_violations", "lost", "duplicated", "stats_mismatches"]
    if gap > 0:  # a contract that declares no backoff (a lease's expiry) has no gap to judge
        judged.append("backoff_violations")
    workload.judge(report, *judged)


@pytest.mark.needs("worker", "retries", "dead_letter")
def test_dead_letter_after_max_attempts(workload: Workload) -> None:
    """A job that always fails is tried exactly max_attempts times, then reported dead/failed."""
    workload.enqueue(workload.specs(5, fail_times=99, max_attempts=3))
    workload.start(1, concurrency=5)
    assert workload.wait_for_starts(15, bound_s=120), "not every attempt was made"
    workload.stop_all()
    history = workload.history()
    attempts = {}
    for run in history.executions:
        attempts[run.id] = attempts.get(run.id, 0) + 1
    assert set(attempts.values()) == {3}, f"attempts per job, expected exactly 3 each: {attempts}"
    stats = workload.driver.stats()
    assert (stats["dead"] or 0) + (stats["failed"] or 0) == 5, f"not all 5 dead/failed after max_attempts: {stats}"


@pytest.mark.needs("worker", "crash_recovery|visibility_timeout")
def test_worker_crash_mid_job(workload: Workload) -> None:
    """The worker process dies (exit 137) during a job's first attempt; a new worker runs it."""
    specs = workload.specs(20)
    specs[5]["crash_on_attempt"] = 1
    workload.enqueue(specs)
    (first,) = workload.start(1, concurrency=1)
    try:
        first.helper.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        first.kill()  # it never reached the crashing job; the checker says what is missing
    workload.start(1, concurrency=2)
    bound = workload.recovery_bound_s()  # the contract's: lease + the period of whatever frees the job
    workload.wait_until_done(bound + 30, idle_s=bound)
    workload.stop_all()
    again = [r.attempt for r in workload.history().executions if r.id == specs[5]["id"]]
    assert again.count(1) < 2, (
        f"the recovered job ran as attempt 1 again (attempts {again}) and crashed the replacement worker too:"
        " the SDK did not count the crashed attempt"
    )
    report = workload.report()
    if report.lost:
        report.notes.insert(0, f"not recovered within {bound:g} s{workload.recovery_note()}")
    workload.judge(report, "lost", "duplicated", "overlaps", redelivery=True)


@pytest.mark.needs("worker")
def test_graceful_shutdown(workload: Workload) -> None:
    """SIGTERM while jobs are in flight: the worker finishes them (and completes them in the
    SDK: the stats of the backlog it leaves agree with the history); a later worker runs the rest."""
    workload.enqueue(workload.specs(30, sleep_ms=300))
    (first,) = workload.start(1, concurrency=5)
    if not workload.wait_for_starts(5, bound_s=30):
        workload.stop_all()
        workload.judge(workload.report(), "lost")
        raise AssertionError("no job started within 30 s")
    code = first.stop()
    history = workload.history()
    unfinished = [r.id for r in history.executions if r.outcome is None]
    assert unfinished == [], f"in-flight jobs abandoned at SIGTERM: {unfinished}"
    assert code == 0, f"worker exited {code} on SIGTERM"
    workload.compare_stats("a backlog with the worker stopped")
    workload.start(1, concurrency=5)
    workload.wait_until_done(60, settle_s=0.3)
    workload.stop_all()
    workload.judge(workload.report(), "lost", "duplicated", "stuck", "stats_mismatches")


LONG_JOB_LEASES = 2.5  # how many leases a healthy long job runs


@pytest.mark.needs("worker")
def test_job_longer_than_its_lease(workload: Workload) -> None:
    """Healthy jobs that run 2.5 times the lease, two workers idle beside them: where the SDK
    extends a running job's lease (a heartbeat, a fixed long lock) each runs once; where the
    contract says a job outliving its lease is taken again, the second runs are its behaviour
    and stay figures on the cell. Nothing is lost either way."""
    sleep_s = LEASE_S * LONG_JOB_LEASES
    workload.enqueue(workload.specs(4, sleep_ms=int(sleep_s * 1000)))
    workload.start(2, concurrency=2)
    bound = sleep_s * 2 + workload.recovery_bound_s()
    workload.wait_until_done(bound, settle_s=LEASE_S, idle_s=bound)
    # A second run started at a lease's end is still going: let it end, so it is counted whole
    # (and a worker is not stopped in the middle of it).
    workload.wait_for(lambda history: all(r.end is not None for r in history.executions), sleep_s + LEASE_S)
    workload.stop_all()
    again = workload.contract.long_job_runs_again
    workload.record("runs_again_by_contract", again)
    report = workload.report()
    workload.judge(report, "lost", "unexpected", "duplicated", "overlaps", "stuck", redelivery=again)
