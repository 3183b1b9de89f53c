"""The checker on hand-made histories: a clean one, and one for each anomaly."""

from __future__ import annotations

import json

import pytest

from gauntlet.checker import (
    Enqueued,
    GrowingFile,
    History,
    backoff_violations,
    check,
    delay_violations,
    expected_counts,
    late_delays,
    not_ticks,
    percentile,
    runs_by_job,
    runs_by_tick,
    stats_mismatch,
    tick_lateness,
    ticks_missed,
    ticks_off_grid,
    ticks_run_twice,
)


def line(event: str, job: str, attempt: int, wall: float, pid: int = 1, **extra) -> str:
    return json.dumps({"event": event, "id": job, "attempt": attempt, "worker": "w", "pid": pid, "wall": wall, **extra})


def run(job: str, start: float, end: float | None, attempt: int = 1, outcome: str = "ok", pid: int = 1) -> list[str]:
    lines = [line("start", job, attempt, start, pid)]
    if end is not None:
        lines.append(line("end", job, attempt, end, pid, outcome=outcome))
    return lines


def history(jobs: dict[str, str], *runs: list[str], **spec) -> History:
    h = History()
    for index, (job, outcome) in enumerate(jobs.items()):
        h.add_enqueued(Enqueued(job, outcome, sent_at=0.0, index=index, **spec.get(job, {})))
    for lines in runs:
        h.add_lines(lines)
    return h


def test_a_clean_history_has_no_anomaly() -> None:
    report = check(history({"a": "ok", "b": "ok"}, run("a", 1, 2), run("b", 2, 3)), order="fifo")
    assert (report.lost, report.unexpected, report.duplicated, report.overlaps) == ([], [], {}, [])
    assert report.order_inversions == 0 and report.succeeded == 2 and report.acknowledged == 2


def test_lost_is_acknowledged_but_never_succeeded() -> None:
    report = check(
        history({"a": "ok", "b": "ok", "c": "indeterminate"}, run("a", 1, 2), run("b", 1, 2, outcome="fail"))
    )
    assert report.lost == ["b"], "an indeterminate enqueue that never ran is not lost"


def test_unexpected_is_executed_but_never_acknowledged() -> None:
    report = check(history({"a": "fail", "c": "indeterminate"}, run("a", 1, 2), run("ghost", 1, 2), run("c", 1, 2)))
    assert report.unexpected == ["a", "ghost"], "rolled back or unknown jobs must not run; indeterminate may"


def test_duplicated_is_more_than_one_success() -> None:
    report = check(history({"a": "ok"}, run("a", 1, 2), run("a", 3, 4, attempt=2)))
    assert report.duplicated == {"a": 2}


def test_overlap_is_two_executions_of_one_job_at_once() -> None:
    report = check(history({"a": "ok"}, run("a", 1, 5), run("a", 2, 3, attempt=1, pid=2)))
    assert report.overlaps == [("a", 1, 1)]


def test_a_crashed_execution_followed_by_a_redelivery_is_no_overlap() -> None:
    report = check(history({"a": "ok"}, run("a", 1, None), run("a", 3, 4, attempt=2, pid=2)))
    assert report.overlaps == [] and report.lost == [] and report.duplicated == {}


def test_fifo_inversions_count_pairs_out_of_enqueue_order() -> None:
    report = check(
        history({"a": "ok", "b": "ok", "c": "ok"}, run("c", 1, 2), run("a", 2, 3), run("b", 3, 4)), order="fifo"
    )
    assert report.order_inversions == 2  # c before a, c before b


def test_starts_on_the_same_clock_reading_keep_the_order_they_were_written_in() -> None:
    # A driver whose clock is coarser than its jobs (Node's Date.now() has milliseconds): the
    # history's line order, not the job id, says which started first.
    in_order = history({"a": "ok", "b": "ok"}, run("b", 5, 5), run("a", 5, 5), b={"priority": 3})
    assert check(in_order, order="priority").order_inversions == 0
    reversed_ = history({"a": "ok", "b": "ok"}, run("b", 5, 5), run("a", 5, 5))
    assert check(reversed_, order="fifo").order_inversions == 1


def test_priority_inversions_use_the_normalised_priority() -> None:
    h = history(
        {"low": "ok", "high": "ok"}, run("low", 1, 2), run("high", 2, 3), low={"priority": 0}, high={"priority": 3}
    )
    assert check(h, order="priority").order_inversions == 1
    h = history(
        {"low": "ok", "high": "ok"}, run("high", 1, 2), run("low", 2, 3), low={"priority": 0}, high={"priority": 3}
    )
    assert check(h, order="priority").order_inversions == 0


def test_attempts_against_the_retry_policy() -> None:
    spec = {
        "a": {"fail_times": 2, "max_attempts": 5},
        "b": {"fail_times": 9, "max_attempts": 3},
        "c": {"fail_times": 1, "max_attempts": 3},
    }
    h = history(
        {"a": "ok", "b": "ok", "c": "ok"},
        run("a", 1, 2, 1, "fail"),
        run("a", 3, 4, 2, "fail"),
        run("a", 5, 6, 3),
        run("b", 1, 2, 1, "fail"),
        run("b", 3, 4, 2, "fail"),
        run("b", 5, 6, 3, "fail"),
        run("c", 1, 2, 1, "fail"),  # never retried
        **spec,
    )
    report = check(h, retries=True)
    assert set(report.attempt_violations) == {"c"}, report.attempt_violations


def test_backoff_gaps_shorter_than_the_policy() -> None:
    h = history({"a": "ok"}, run("a", 1, 2, 1, "fail"), run("a", 2.1, 3, 2), a={"fail_times": 1, "max_attempts": 3})
    assert check(h, retries=True, min_backoff_s=1.0).backoff_violations == {"a": pytest.approx(0.1)}
    assert check(h, retries=True, min_backoff_s=0.05).backoff_violations == {}


def test_backoff_is_the_shortest_gap_after_a_failure_and_a_retry_at_once_is_one() -> None:
    spec = {"a": {"fail_times": 2, "max_attempts": 5}, "b": {"fail_times": 1, "max_attempts": 5}}
    h = history(
        {"a": "ok", "b": "ok"},
        run("a", 0, 0.01, 1, "fail"),
        run("a", 1.51, 1.52, 2, "fail"),  # waited 1.5 s
        run("a", 1.54, 1.55, 3),  # retried at once
        run("b", 0, 0.01, 1, "fail"),
        run("b", 2.01, 2.02, 2),
        **spec,
    )
    assert backoff_violations(h, runs_by_job(h), 1.0) == {"a": pytest.approx(0.02)}
    assert backoff_violations(h, runs_by_job(h), 0.0) == {}, "a contract that declares no gap judges none"


def test_a_run_after_a_success_is_a_duplicate_not_a_retry() -> None:
    h = history({"a": "ok"}, run("a", 0, 0.01), run("a", 0.02, 0.03, 2), a={"max_attempts": 3})
    assert backoff_violations(h, runs_by_job(h), 1.0) == {}
    assert check(h).duplicated == {"a": 2}


def test_delay_violation_is_a_start_before_its_time() -> None:
    h = history({"a": "ok", "b": "ok"}, run("a", 0.5, 1), run("b", 2.5, 3), a={"delay_ms": 2000}, b={"delay_ms": 2000})
    assert check(h).delay_violations == {"a": 1.5}


def test_a_delay_counts_from_the_acknowledgement_when_it_was_timed() -> None:
    # The driver took 0.5 s to start and honoured 80 % of a 3 s delay: from the enqueue call
    # (sent_at 0) the job looks on time; from its acknowledgement (0.5) it is 0.6 s early.
    h = history({"short": "ok", "fair": "ok"}, run("short", 2.9, 3), run("fair", 3.51, 3.6))
    for job in ("short", "fair"):
        h.enqueued[job] = Enqueued(job, "ok", sent_at=0.0, delay_ms=3000, acked_at=0.5)
    runs = runs_by_job(h)
    assert delay_violations(h, runs, 0.25) == {"short": pytest.approx(0.6)}
    assert check(h, delay_tolerance_s=0.25).delay_violations == {"short": pytest.approx(0.6)}
    untimed = History()
    untimed.add_enqueued(Enqueued("short", "ok", sent_at=0.0, delay_ms=3000))
    untimed.add_lines(run("short", 2.9, 3))
    assert delay_violations(untimed, runs_by_job(untimed), 0.25) == {}, "from the call, start-up hides it"


def test_a_late_delayed_start_counts_from_the_acknowledgement_only() -> None:
    h = History()
    h.add_enqueued(Enqueued("late", "ok", sent_at=0.0, delay_ms=1000, acked_at=0.5))
    h.add_enqueued(Enqueued("ok", "ok", sent_at=0.0, delay_ms=1000, acked_at=0.5))
    h.add_enqueued(Enqueued("untimed", "ok", sent_at=0.0, delay_ms=1000))
    h.add_enqueued(Enqueued("undelayed", "ok", sent_at=0.0, acked_at=0.5))
    for lines in (run("late", 3.0, 3.1), run("ok", 1.9, 2), run("untimed", 5, 6), run("undelayed", 9, 10)):
        h.add_lines(lines)
    assert late_delays(h, runs_by_job(h), 1.0) == {"late": pytest.approx(1.5)}
    assert check(h).late_delays == {}, "lateness is judged only when a bound is given"
    assert check(h, delay_late_s=1.0).late_delays == {"late": pytest.approx(1.5)}


def test_stats_agree_with_a_backlog_and_with_jobs_waiting_for_a_retry() -> None:
    h = history(
        {"a": "ok", "b": "ok", "c": "ok", "d": "ok", "rolled": "fail"},
        run("a", 0, 1),
        run("b", 0, 1, 1, "fail"),  # waiting for its retry: still pending
        run("c", 0, None),  # running
        b={"fail_times": 1, "max_attempts": 3},
    )
    want = expected_counts(h)
    assert (want.pending, want.succeeded, want.exhausted) == (3, 1, 0)
    good = {"queued": 2, "running": 1, "succeeded": None, "failed": 0, "dead": None}
    assert stats_mismatch(h, good) == []
    assert stats_mismatch(h, {**good, "queued": 1, "running": 2}) == [], "queued or running: the sum is judged"
    under = stats_mismatch(h, {**good, "queued": 1})
    assert len(under) == 1 and "queued 1 + running 1 = 2, but the history has 3 pending" in under[0]
    leaked = stats_mismatch(h, {**good, "queued": 3})  # the rolled-back job is queued after all
    assert len(leaked) == 1


def test_stats_count_exhausted_jobs_as_dead_or_failed_and_skip_what_is_not_kept() -> None:
    h = history(
        {"x": "ok", "y": "ok"},
        *(run("x", n, n + 0.5, n, "fail") for n in (1, 2, 3)),
        x={"fail_times": 9, "max_attempts": 3},
    )
    assert expected_counts(h).exhausted == 1 and expected_counts(h).pending == 1
    assert stats_mismatch(h, {"queued": 1, "running": 0, "succeeded": 0, "failed": None, "dead": 1}) == []
    assert stats_mismatch(h, {"queued": 1, "running": 0, "succeeded": 0, "failed": 1, "dead": None}) == []
    wrong = stats_mismatch(h, {"queued": 1, "running": 0, "succeeded": 0, "failed": 0, "dead": 0})
    assert len(wrong) == 1 and "out of attempts" in wrong[0]
    not_kept = {"queued": None, "running": None, "succeeded": None, "failed": None, "dead": None}
    assert stats_mismatch(h, not_kept) == []


def test_stats_allow_an_indeterminate_enqueue_either_way() -> None:
    h = history({"a": "ok", "maybe": "indeterminate"})
    base = {"running": 0, "succeeded": None, "failed": None, "dead": None}
    assert stats_mismatch(h, {**base, "queued": 1}) == []
    assert stats_mismatch(h, {**base, "queued": 2}) == []
    assert stats_mismatch(h, {**base, "queued": 0}) != []
    assert stats_mismatch(h, {**base, "queued": 3}) != []


def test_stuck_comes_from_the_final_stats_and_latency_from_starts() -> None:
    h = history({"a": "ok", "b": "ok"}, run("a", 0.1, 1), run("b", 0.3, 1))
    h.stats = {"queued": 2, "running": 1, "succeeded": 0, "failed": None, "dead": None}
    report = check(h)
    assert report.stuck == 3
    assert report.latency_s["p50"] == pytest.approx(0.1) and report.latency_s["p99"] == pytest.approx(0.3)


def test_malformed_history_lines_are_counted_not_dropped_silently() -> None:
    h = history({"a": "ok"}, run("a", 1, 2), ["garbage", '{"event": "start"}', line("end", "z", 1, 3, outcome="ok")])
    assert check(h).malformed == 3


def test_unknown_enqueue_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown enqueue outcome"):
        History().add_enqueued(Enqueued("a", "maybe", 0.0))


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3, 1, 2, 4], 50) == 2 and percentile([3, 1, 2, 4], 99) == 4


def test_the_summary_counts_every_property() -> None:
    h = history({"a": "ok"}, run("a", 3, 4), a={"delay_ms": 1000})
    h.enqueued["a"] = Enqueued("a", "ok", sent_at=0.0, delay_ms=1000, acked_at=0.0)
    report = check(h, delay_late_s=1.0)
    report.stats_mismatches = ["a backlog: queued 0 + running 0 = 0, but the history has 1 pending"]
    summary = report.summary()
    assert summary["late_delays"] == 1 and summary["stats_mismatches"] == 1 and summary["lost"] == 0


def test_a_growing_file_is_read_once_and_only_in_whole_lines(tmp_path) -> None:
    """Waits read only what was appended; a line still being written waits for its newline,
    and a start and its end read in different calls still pair up."""
    path = tmp_path / "history.jsonl"
    growing, h = GrowingFile(path), History()
    assert growing.new_lines() == []  # no file yet
    start, end = run("a", 1.0, 2.0)
    path.write_text(start + "\n" + end[:10])
    h.add_lines(growing.new_lines())
    assert [(r.id, r.end) for r in h.executions] == [("a", None)] and not h.malformed
    with path.open("a") as file:
        file.write(end[10:] + "\n")
    h.add_lines(growing.new_lines())
    assert [(r.id, r.end, r.outcome) for r in h.executions] == [("a", 2.0, "ok")] and not h.malformed
    assert growing.new_lines() == []


def test_upgrade_problems_accept_a_working_or_documented_previous_worker() -> None:
    from gauntlet.checker import PreviousWorker, upgrade_problems

    working = PreviousWorker("w1", ended=None, stopped=0, starts_after=3)
    documented = PreviousWorker("w2", ended=57, stopped=None, starts_after=0)
    assert upgrade_problems([working, documented], documented_exit=57) == []
    assert upgrade_problems([working], documented_exit=None) == []


def test_upgrade_problems_name_a_crash_a_stall_and_a_bad_stop() -> None:
    from gauntlet.checker import PreviousWorker, upgrade_problems

    crashed = PreviousWorker("w1", ended=1, stopped=None, starts_after=0)
    stalled = PreviousWorker("w2", ended=None, stopped=0, starts_after=0)
    bad_stop = PreviousWorker("w3", ended=None, stopped=137, starts_after=2)
    found = upgrade_problems([crashed, stalled, bad_stop], documented_exit=57)
    assert len(found) == 3
    assert "exited 1 during the upgrade; its SDK documents exit 57" in found[0]
    assert "started no job" in found[1] and "exited 137 when stopped" in found[2]
    assert "keeps working" in upgrade_problems([PreviousWorker("w4", 57, None, 0)], documented_exit=None)[0]


def test_starts_since_counts_each_workers_later_starts() -> None:
    from gauntlet.checker import starts_since

    history = History()
    history.add_lines([*run("a", 1.0, 1.5), *run("b", 3.0, 3.5), *run("c", 4.0, None)])
    assert starts_since(history, 2.0) == {"w": 2}
    assert starts_since(history, 5.0) == {}


def periodic(*runs: tuple[int, float, int]) -> History:
    """A history of periodic executions: (tick, start, pid) each, ending 0.1 s after it starts."""
    h = History()
    for tick, start, pid in runs:
        h.add_lines(run(f"periodic-{tick}", start, start + 0.1, pid=pid))
    return h


def test_each_tick_once_has_no_periodic_anomaly() -> None:
    h = periodic((100, 100.2, 1), (102, 102.3, 2), (104, 104.1, 1))
    ticks = runs_by_tick(h)
    assert sorted(ticks) == [100, 102, 104] and not_ticks(h) == []
    assert ticks_run_twice(ticks) == {} and ticks_off_grid(ticks, 2, 98, 106) == []
    assert ticks_missed(ticks, 2, 99.5, 104) == []
    assert tick_lateness(ticks) == {100: 0.2, 102: 0.3, 104: 0.1}


def test_a_tick_two_workers_both_ran_is_run_twice() -> None:
    ticks = runs_by_tick(periodic((100, 100.2, 1), (100, 100.25, 2), (102, 102.1, 1)))
    assert ticks_run_twice(ticks) == {100: 2}


def test_a_tick_that_elapsed_without_a_run_is_missed() -> None:
    ticks = runs_by_tick(periodic((100, 100.2, 1), (104, 104.1, 1)))
    assert ticks_missed(ticks, 2, 100, 106) == [102, 106]
    assert ticks_missed(ticks, 2, 100.5, 105.9) == [102]  # the partial first and last periods are not due


def test_a_tick_off_the_schedule_or_outside_the_run_is_off_grid() -> None:
    ticks = runs_by_tick(periodic((101, 101.2, 1), (90, 100.1, 1), (104, 104.1, 1)))
    assert ticks_off_grid(ticks, 2, 98, 106) == [90, 101]


def test_an_execution_without_a_tick_is_not_a_tick() -> None:
    h = periodic((100, 100.2, 1))
    h.add_lines(run("periodic-x", 101, 102) + run("j1", 101, 102))
    assert not_ticks(h) == ["j1", "periodic-x"] and list(runs_by_tick(h)) == [100]


def test_in_flight_at_counts_runs_open_at_that_moment() -> None:
    from gauntlet.checker import in_flight_at

    history = History()
    history.add_lines([*run("a", 1.0, 1.5), *run("b", 1.2, 3.0), *run("c", 1.4, None), *run("d", 2.5, 2.6)])
    assert in_flight_at(history, 2.0) == 2
    assert in_flight_at(history, 0.5) == 0
