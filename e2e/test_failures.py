"""Failures: retries with backoff, dead letters, crashed workers, graceful shutdown."""

from __future__ import annotations

import subprocess

import pytest

from .workload import Workload, assert_holds


@pytest.mark.needs("worker", "retries")
def test_retry_storm(workload: Workload) -> None:
    """Jobs that fail k times are retried with backoff, up to max_attempts, then succeed."""
    specs = []
    for fail_times in (0, 1, 2):
        specs += workload.specs(10, fail_times=fail_times, max_attempts=5)
    workload.enqueue(specs)
    workload.start(1, concurrency=5)
    # Backoff is the SDK's: graphile-worker's second retry waits e^2 s, so a long idle bound.
    workload.wait_until_done(120, settle_s=0.5, idle_s=30)
    workload.stop_all()
    assert_holds(workload.report(retries=True), "attempt_violations", "lost", "duplicated")


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
    # River rescues only on its leader: a dead leader's lease runs 15 s before another takes over.
    workload.wait_until_done(90, idle_s=45)
    workload.stop_all()
    again = [r.attempt for r in workload.history().executions if r.id == specs[5]["id"]]
    assert again.count(1) < 2, (
        f"the recovered job ran as attempt 1 again (attempts {again}) and crashed the replacement worker too:"
        " the SDK did not count the crashed attempt"
    )
    assert_holds(workload.report(), "lost", "duplicated", "overlaps")


@pytest.mark.needs("worker")
def test_graceful_shutdown(workload: Workload) -> None:
    """SIGTERM while jobs are in flight: the worker finishes them; a later worker runs the rest."""
    workload.enqueue(workload.specs(30, sleep_ms=300))
    (first,) = workload.start(1, concurrency=5)
    if not workload.wait_for_starts(5, bound_s=30):
        workload.stop_all()
        assert_holds(workload.report(), "lost")
        raise AssertionError("no job started within 30 s")
    code = first.stop()
    history = workload.history()
    unfinished = [r.id for r in history.executions if r.outcome is None]
    assert unfinished == [], f"in-flight jobs abandoned at SIGTERM: {unfinished}"
    assert code == 0, f"worker exited {code} on SIGTERM"
    workload.start(1, concurrency=5)
    workload.wait_until_done(60, settle_s=0.3)
    workload.stop_all()
    assert_holds(workload.report(), "lost", "duplicated")
