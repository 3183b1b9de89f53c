"""A cell's evidence: what the harness keeps of a scenario once it ends, for the report's
page of that cell (the history itself lives in a temporary folder that pytest deletes).

One JSON file per cell, reports/out/evidence/<kind>-<sdk>/<test>.json: the cell's key, the
test and its seed, the fault windows with wall times, a downsampled series (completions per
second and enqueue→start latency), the witnesses of every property the checker found broken
(the first few job ids, each with its executions), the runs a fault cut, and the workers'
error lines. Bounded
whatever the wave's size: at most BINS points, WITNESSES ids per property, RUNS executions per
id, ERRORS lines. The witnesses come from the checker's own properties, never recomputed here.
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

from gauntlet.checker import Execution, History, Report, inverted_pairs, percentile, runs_by_job

BINS = 240
MIN_BIN_S = 0.25
WITNESSES = 20
RUNS = 10
ERRORS = 10


def _execution(run: Execution) -> dict[str, Any]:
    return {
        "attempt": run.attempt,
        "worker": run.worker,
        "pid": run.pid,
        "sdk_id": run.sdk_id,
        "start": run.start,
        "end": run.end,
        "outcome": run.outcome,
    }


def series(history: History, t0: float) -> dict[str, Any]:
    """Completions per second (by end) and each job's enqueue→start latency (by its first
    start: p50 and max per bin), in bins from t0; None where a bin saw no start."""
    runs = runs_by_job(history)
    ends = [r.end - t0 for r in history.executions if r.outcome == "ok" and r.end is not None]
    waits = [
        (job_runs[0].start - t0, max(0.0, job_runs[0].start - item.sent_at - item.delay_ms / 1000))
        for i, job_runs in runs.items()
        if (item := history.enqueued.get(i)) is not None
    ]
    span = max([0.0, *ends, *(t for t, _ in waits)])
    width = max(MIN_BIN_S, round(span / BINS, 3))
    count = int(span // width) + 1
    done = [0] * count
    for t in ends:
        done[max(0, int(t // width))] += 1
    latency: list[list[float]] = [[] for _ in range(count)]
    for t, wait in waits:
        latency[max(0, int(t // width))].append(wait)
    return {
        "bin_s": width,
        "completions_per_s": [round(n / width, 2) for n in done],
        "latency_p50_s": [None if not b else round(percentile(b, 50) or 0.0, 4) for b in latency],
        "latency_max_s": [None if not b else round(max(b), 4) for b in latency],
    }


def witnesses(history: History, report: Report, order: str | None) -> dict[str, dict[str, Any]]:
    """Per broken property: how many, and its first few job ids with a word on each and their
    executions."""
    runs = runs_by_job(history)
    found: dict[str, tuple[int, dict[str, str]]] = {
        "lost": (len(report.lost), {i: "acknowledged, never succeeded" for i in report.lost[:WITNESSES]}),
        "unexpected": (len(report.unexpected), {i: "ran, never acknowledged" for i in report.unexpected[:WITNESSES]}),
        "duplicated": (len(report.duplicated), {i: f"{n} successful runs" for i, n in report.duplicated.items()}),
        "overlaps": (len(report.overlaps), {i: f"attempts {a} and {b} ran at once" for i, a, b in report.overlaps}),
        "attempt_violations": (len(report.attempt_violations), dict(report.attempt_violations)),
        "backoff_violations": (
            len(report.backoff_violations),
            {i: f"retried {gap} s after the failure" for i, gap in report.backoff_violations.items()},
        ),
        "delay_violations": (
            len(report.delay_violations),
            {i: f"started {s} s early" for i, s in report.delay_violations.items()},
        ),
        "late_delays": (len(report.late_delays), {i: f"started {s} s late" for i, s in report.late_delays.items()}),
    }
    if order in ("fifo", "priority") and report.order_inversions:
        pairs = islice(inverted_pairs(history, runs, order), WITNESSES)
        overtaken = {later: f"queued ahead of {first}, started after it" for first, later in pairs}
        found["out_of_order"] = (report.order_inversions, overtaken)
    return {kind: _jobs(history, runs, total, jobs) for kind, (total, jobs) in found.items() if total}


def cut(history: History) -> dict[str, Any]:
    """Jobs with a run that never ended (its worker died, or the drain stopped it): not a
    violation, the fault at work; what became of each job is in its later executions."""
    runs = runs_by_job(history)
    jobs = {i: f"{len(job_runs)} executions" for i, job_runs in runs.items() if any(r.end is None for r in job_runs)}
    return _jobs(history, runs, len(jobs), jobs)


def _jobs(history: History, runs: dict[str, list[Execution]], total: int, jobs: dict[str, str]) -> dict[str, Any]:
    """How many, and the first WITNESSES of them with a word each and their executions."""
    return {
        "count": total,
        "jobs": [
            {
                "id": i,
                "detail": detail,
                "enqueued": _enqueued(history, i),
                "executions": [_execution(r) for r in runs.get(i, [])[:RUNS]],
            }
            for i, detail in islice(jobs.items(), WITNESSES)
        ],
    }


def _enqueued(history: History, job: str) -> dict[str, Any] | None:
    item = history.enqueued.get(job)
    return None if item is None else {"outcome": item.outcome, "sent_at": item.sent_at, "index": item.index}


def build(
    cell: dict[str, str],
    test: str,
    seed: int,
    history: History,
    report: Report | None,
    order: str | None,
    faults: list[dict[str, Any]],
    errors: list[str],
    recovery_s: float | None = None,
) -> dict[str, Any]:
    """The evidence of one scenario; t0 is its first enqueue (or first start); `recovery_s`
    the wave's, when it recorded one (first success after the last heal)."""
    moments = [e.sent_at for e in history.enqueued.values()] or [r.start for r in history.executions]
    t0 = min(moments, default=0.0)
    return {
        "cell": cell,
        "test": test,
        "seed": seed,
        "t0": t0,
        "enqueued": len(history.enqueued),
        "executions": len(history.executions),
        "faults": faults,
        "recovery_s": recovery_s,
        "series": series(history, t0),
        "witnesses": witnesses(history, report, order) if report is not None else {},
        "cut": cut(history),
        "worker_errors": errors[:ERRORS],
    }


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


def load(path: Path) -> dict[str, Any] | None:
    """An evidence file, or None when it is missing or unreadable (the page says so)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("cell"), dict) else None
