"""The checker (Jepsen's role): judges a recorded history, never the driver's word.

A history holds every enqueue invocation with its three-valued outcome (ok, fail,
indeterminate) and every execution line the workers appended. Pure functions, no I/O
beyond reading a history file, so each anomaly is unit-tested on hand-made histories.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

OUTCOMES = ("ok", "fail", "indeterminate")


@dataclass(frozen=True)
class Enqueued:
    id: str
    outcome: str  # ok / fail / indeterminate
    sent_at: float  # wall time just before the enqueue call: the earliest the SDK can have stored it
    index: int = 0  # enqueue order within the run
    priority: int = 0  # normalised: higher first
    delay_ms: int = 0
    max_attempts: int | None = None
    fail_times: int = 0


@dataclass
class Execution:
    id: str
    attempt: int
    worker: str
    pid: int
    start: float
    end: float | None = None
    outcome: str | None = None  # ok / fail; None when the process died mid-run
    payload: Any = None
    has_payload: bool = False


@dataclass
class History:
    enqueued: dict[str, Enqueued] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    stats: Mapping[str, int | None] | None = None
    malformed: list[str] = field(default_factory=list)

    def add_enqueued(self, item: Enqueued) -> None:
        if item.outcome not in OUTCOMES:
            raise ValueError(f"unknown enqueue outcome {item.outcome!r}")
        self.enqueued[item.id] = item

    def add_lines(self, lines: Iterable[str]) -> None:
        """Pair start/end lines by (id, attempt, pid); a line that is not one is kept as malformed."""
        open_runs: dict[tuple[str, int, int], Execution] = {}
        for raw in lines:
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                key = (str(line["id"]), int(line["attempt"]), int(line["pid"]))
                event = line["event"]
                wall = float(line["wall"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                self.malformed.append(raw.rstrip("\n")[:300])
                continue
            if event == "start":
                run = Execution(key[0], key[1], str(line.get("worker", "")), key[2], wall)
                if "payload" in line:
                    run.payload, run.has_payload = line["payload"], True
                self.executions.append(run)
                open_runs[key] = run
            elif event == "end" and key in open_runs:
                run = open_runs.pop(key)
                run.end, run.outcome = wall, str(line.get("outcome"))
            else:
                self.malformed.append(raw.rstrip("\n")[:300])

    def add_file(self, path: Path) -> None:
        if path.exists():
            self.add_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())


@dataclass
class Report:
    acknowledged: int
    succeeded: int
    executions: int
    lost: list[str]
    unexpected: list[str]
    duplicated: dict[str, int]
    overlaps: list[tuple[str, int, int]]
    order_inversions: int
    attempt_violations: dict[str, str]
    backoff_violations: dict[str, float]
    delay_violations: dict[str, float]
    stuck: int | None
    malformed: int
    latency_s: dict[str, float | None]
    notes: list[str] = field(default_factory=list)  # context a scenario attaches (e.g. worker errors)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("notes")
        for key in ("lost", "unexpected", "overlaps"):
            data[key] = len(data[key])
        for key in ("duplicated", "attempt_violations", "backoff_violations", "delay_violations"):
            data[key] = len(data[key])
        return data


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def _inversions(order: list[str], expected_key: Mapping[str, tuple[Any, ...]]) -> int:
    """Pairs that started in the opposite order to the expected one."""
    count = 0
    for i, earlier in enumerate(order):
        for later in order[i + 1 :]:
            if expected_key[later] < expected_key[earlier]:
                count += 1
    return count


def check(
    history: History,
    *,
    order: str | None = None,  # None, "fifo" or "priority"
    retries: bool = False,
    min_backoff_s: float = 0.0,
    delay_tolerance_s: float = 0.0,
) -> Report:
    runs_by_id: dict[str, list[Execution]] = defaultdict(list)
    for run in history.executions:
        runs_by_id[run.id].append(run)
    for runs in runs_by_id.values():
        runs.sort(key=lambda r: (r.start, r.attempt))

    acked = {i: e for i, e in history.enqueued.items() if e.outcome == "ok"}
    succeeded = {i for i, runs in runs_by_id.items() if any(r.outcome == "ok" for r in runs)}
    lost = sorted(i for i in acked if i not in succeeded)
    unexpected = sorted(i for i in runs_by_id if i not in history.enqueued or history.enqueued[i].outcome == "fail")
    duplicated = {i: n for i, runs in runs_by_id.items() if (n := sum(1 for r in runs if r.outcome == "ok")) > 1}

    overlaps = []
    for i, runs in runs_by_id.items():
        for a, b in pairwise(runs):
            a_end = a.end if a.end is not None else a.start
            if b.start < a_end:
                overlaps.append((i, a.attempt, b.attempt))

    inversions = 0
    if order in ("fifo", "priority"):
        first_starts = sorted((runs[0].start, i) for i, runs in runs_by_id.items() if i in acked)
        started = [i for _, i in first_starts]
        key: dict[str, tuple[int, ...]]
        if order == "fifo":
            key = {i: (acked[i].index,) for i in started}
        else:
            key = {i: (-acked[i].priority, acked[i].index) for i in started}
        inversions = _inversions(started, key)

    attempt_violations: dict[str, str] = {}
    backoff_violations: dict[str, float] = {}
    if retries:
        for i, item in acked.items():
            runs = runs_by_id.get(i, [])
            cap = item.max_attempts or 1
            expected = min(item.fail_times + 1, cap)
            if len(runs) != expected:
                attempt_violations[i] = (
                    f"{len(runs)} executions, expected {expected} (fail_times {item.fail_times}, max {cap})"
                )
            for a, b in pairwise(runs):
                gap = b.start - (a.end if a.end is not None else a.start)
                if gap < min_backoff_s:
                    backoff_violations[i] = round(gap, 3)

    delay_violations = {}
    latencies = []
    for i, item in acked.items():
        first = runs_by_id.get(i)
        if not first:
            continue
        early = item.sent_at + item.delay_ms / 1000 - first[0].start
        if item.delay_ms and early > delay_tolerance_s:
            delay_violations[i] = round(early, 3)
        latencies.append(max(0.0, first[0].start - item.sent_at - item.delay_ms / 1000))

    stuck = None
    if history.stats is not None:
        stuck = int(history.stats.get("queued") or 0) + int(history.stats.get("running") or 0)

    return Report(
        acknowledged=len(acked),
        succeeded=len(succeeded & set(acked)),
        executions=len(history.executions),
        lost=lost,
        unexpected=unexpected,
        duplicated=duplicated,
        overlaps=overlaps,
        order_inversions=inversions,
        attempt_violations=attempt_violations,
        backoff_violations=backoff_violations,
        delay_violations=delay_violations,
        stuck=stuck,
        malformed=len(history.malformed),
        latency_s={f"p{q}": percentile(latencies, q) for q in (50, 95, 99)},
    )
