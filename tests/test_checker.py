"""The checker on hand-made histories: a clean one, and one for each anomaly."""

from __future__ import annotations

import json

import pytest

from gauntlet.checker import Enqueued, History, check, percentile


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


def test_delay_violation_is_a_start_before_its_time() -> None:
    h = history({"a": "ok", "b": "ok"}, run("a", 0.5, 1), run("b", 2.5, 3), a={"delay_ms": 2000}, b={"delay_ms": 2000})
    assert check(h).delay_violations == {"a": 1.5}


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
