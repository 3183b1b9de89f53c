"""The checker (Jepsen's role): judges a recorded history, never the driver's word.

A history holds every enqueue invocation with its three-valued outcome (ok, fail,
indeterminate) and every execution line the workers appended. Each property is a named pure
function of the history (and, for `stats_mismatch`, of one reading of the system's counts),
so each anomaly is unit-tested on hand-made histories; `check` runs them all.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
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
    # Wall time the harness read this job's acknowledgement line. The SDK had the spec (and had
    # fixed a delayed job's time) before it answered, so this is the reference a delay is
    # measured from; None when the acknowledgement was not timed.
    acked_at: float | None = None


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
    seq: int = 0  # the start line's place in the history: breaks ties between equal clock readings
    sdk_id: str = ""  # the SDK's own job id: two runs of one id are a redelivery, of two ids a second insert


@dataclass
class History:
    enqueued: dict[str, Enqueued] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    stats: Mapping[str, int | None] | None = None
    malformed: list[str] = field(default_factory=list)
    # Executions whose end line has not been read yet, so lines can arrive in several calls.
    _open: dict[tuple[str, int, int], Execution] = field(default_factory=dict, repr=False)

    def add_enqueued(self, item: Enqueued) -> None:
        if item.outcome not in OUTCOMES:
            raise ValueError(f"unknown enqueue outcome {item.outcome!r}")
        self.enqueued[item.id] = item

    def add_lines(self, lines: Iterable[str]) -> None:
        """Pair start/end lines by (id, attempt, pid), across calls; a line that is not one is
        kept as malformed."""
        open_runs = self._open
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
                worker, sdk_id = str(line.get("worker", "")), str(line.get("sdk_id", ""))
                run = Execution(key[0], key[1], worker, key[2], wall, seq=len(self.executions), sdk_id=sdk_id)
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
class GrowingFile:
    """A history file the workers are still appending to, read from where the last read left
    off: waits poll it every few milliseconds, and re-parsing all of it each time grows with
    the run. Only whole lines are returned; a last line without its newline waits for it."""

    path: Path
    offset: int = 0
    partial: bytes = b""

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *whole, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in whole]


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
    late_delays: dict[str, float] = field(default_factory=dict)
    stats_mismatches: list[str] = field(default_factory=list)  # readings taken while jobs were pending

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("notes")
        for key in ("lost", "unexpected", "overlaps", "stats_mismatches"):
            data[key] = len(data[key])
        for key in ("duplicated", "attempt_violations", "backoff_violations", "delay_violations", "late_delays"):
            data[key] = len(data[key])
        return data


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


# --- the properties, each a pure function -------------------------------------------------

Runs = Mapping[str, list[Execution]]


def runs_by_job(history: History) -> dict[str, list[Execution]]:
    """Each job's executions in the order they started."""
    runs: dict[str, list[Execution]] = defaultdict(list)
    for run in history.executions:
        runs[run.id].append(run)
    for job_runs in runs.values():
        job_runs.sort(key=lambda r: (r.start, r.seq))
    return dict(runs)


def acknowledged(history: History) -> dict[str, Enqueued]:
    return {i: e for i, e in history.enqueued.items() if e.outcome == "ok"}


def succeeded_ids(runs: Runs) -> set[str]:
    return {i for i, job_runs in runs.items() if any(r.outcome == "ok" for r in job_runs)}


def lost(history: History, runs: Runs) -> list[str]:
    """Acknowledged, never succeeded."""
    done = succeeded_ids(runs)
    return sorted(i for i in acknowledged(history) if i not in done)


def unexpected(history: History, runs: Runs) -> list[str]:
    """Executed, but never enqueued or enqueued with outcome fail (e.g. in a rolled-back transaction)."""
    return sorted(i for i in runs if i not in history.enqueued or history.enqueued[i].outcome == "fail")


def duplicated(runs: Runs) -> dict[str, int]:
    """More than one successful execution of one job."""
    return {i: n for i, job_runs in runs.items() if (n := sum(1 for r in job_runs if r.outcome == "ok")) > 1}


def overlaps(runs: Runs) -> list[tuple[str, int, int]]:
    """Two executions of one job at the same time (a crashed one counts until its start)."""
    found = []
    for i, job_runs in runs.items():
        for a, b in pairwise(job_runs):
            a_end = a.end if a.end is not None else a.start
            if b.start < a_end:
                found.append((i, a.attempt, b.attempt))
    return found


def inverted_pairs(history: History, runs: Runs, order: str) -> Iterator[tuple[str, str]]:
    """Pairs of acknowledged jobs (started first, started later) whose first starts are out
    of FIFO or priority order, in the order they started: the witnesses of order_inversions."""
    acked = acknowledged(history)
    first_starts = sorted((job_runs[0].start, job_runs[0].seq, i) for i, job_runs in runs.items() if i in acked)
    started = [i for _, _, i in first_starts]
    key: dict[str, tuple[int, ...]]
    if order == "fifo":
        key = {i: (acked[i].index,) for i in started}
    else:
        key = {i: (-acked[i].priority, acked[i].index) for i in started}
    for n, earlier in enumerate(started):
        for later in started[n + 1 :]:
            if key[later] < key[earlier]:
                yield earlier, later


def order_inversions(history: History, runs: Runs, order: str) -> int:
    """Pairs of acknowledged jobs whose first starts are out of FIFO or priority order."""
    return sum(1 for _ in inverted_pairs(history, runs, order))


def attempt_violations(history: History, runs: Runs) -> dict[str, str]:
    """Jobs not tried exactly min(fail_times + 1, max_attempts) times."""
    found = {}
    for i, item in acknowledged(history).items():
        n = len(runs.get(i, []))
        cap = item.max_attempts or 1
        expected = min(item.fail_times + 1, cap)
        if n != expected:
            found[i] = f"{n} executions, expected {expected} (fail_times {item.fail_times}, max {cap})"
    return found


def backoff_violations(history: History, runs: Runs, min_gap_s: float) -> dict[str, float]:
    """Retries that began sooner than `min_gap_s` after the failed attempt before them ended
    (the shortest gap the retry policy allows): the shortest such gap per job, in seconds."""
    found: dict[str, float] = {}
    if min_gap_s <= 0:
        return found
    for i in acknowledged(history):
        for a, b in pairwise(runs.get(i, [])):
            if a.outcome == "ok":
                continue  # a run after a success is a duplicate, not a retry
            gap = b.start - (a.end if a.end is not None else a.start)
            if gap < min_gap_s:
                found[i] = round(min(gap, found.get(i, gap)), 3)
    return found


def delay_reference(item: Enqueued) -> float:
    """The moment a delay counts from: when the acknowledgement arrived (the SDK had fixed the
    job's time by then), else when the enqueue call was made (earlier still, so never unfair)."""
    return item.acked_at if item.acked_at is not None else item.sent_at


def delay_violations(history: History, runs: Runs, tolerance_s: float = 0.0) -> dict[str, float]:
    """Delayed jobs whose first start came before their time by more than `tolerance_s`
    (the harness's own slack in timing the acknowledgement): seconds early."""
    found = {}
    for i, item in acknowledged(history).items():
        job_runs = runs.get(i)
        if not item.delay_ms or not job_runs:
            continue
        early = delay_reference(item) + item.delay_ms / 1000 - job_runs[0].start
        if early > tolerance_s:
            found[i] = round(early, 3)
    return found


def late_delays(history: History, runs: Runs, bound_s: float) -> dict[str, float]:
    """Delayed jobs that started more than `bound_s` after their time: seconds late. Only jobs
    whose acknowledgement was timed count: from the enqueue call, a driver's start-up would
    look like lateness."""
    found = {}
    for i, item in acknowledged(history).items():
        job_runs = runs.get(i)
        if not item.delay_ms or not job_runs or item.acked_at is None:
            continue
        late = job_runs[0].start - (item.acked_at + item.delay_ms / 1000)
        if late > bound_s:
            found[i] = round(late, 3)
    return found


@dataclass(frozen=True)
class Expected:
    """What the history says the system must hold at the moment it was read."""

    pending: int  # acknowledged, neither succeeded nor out of attempts: queued or running
    maybe_pending: int  # indeterminate enqueues not (yet) run: may or may not be stored
    succeeded: int  # acknowledged jobs with a successful execution
    exhausted: int  # acknowledged jobs that failed max_attempts times: dead or failed


def expected_counts(history: History) -> Expected:
    runs = runs_by_job(history)
    done = succeeded_ids(runs)
    exhausted = {
        i
        for i, item in acknowledged(history).items()
        if i not in done
        and item.max_attempts is not None
        and sum(1 for r in runs.get(i, []) if r.outcome == "fail") >= item.max_attempts
    }
    acked = set(acknowledged(history))
    maybe = {i for i, e in history.enqueued.items() if e.outcome == "indeterminate"} - done
    return Expected(len(acked - done - exhausted), len(maybe), len(acked & done), len(exhausted))


def stats_mismatch(history: History, stats: Mapping[str, int | None]) -> list[str]:
    """The system's counts (its stats query) against the history read at the same moment:
    queued + running must be acknowledged − succeeded − dead (the jobs still to run), and
    dead + failed, where the system keeps them, the jobs out of attempts. A count the system
    does not keep (None) is not judged; nor is `succeeded`, which some systems can only
    estimate (PGMQ's comes from a sequence that rolled-back sends advance too). Empty when
    they agree."""
    want = expected_counts(history)
    found = []
    queued, running = stats.get("queued"), stats.get("running")
    if queued is not None or running is not None:
        pending = (queued or 0) + (running or 0)
        if not want.pending <= pending <= want.pending + want.maybe_pending:
            maybe = f" + up to {want.maybe_pending} indeterminate" if want.maybe_pending else ""
            found.append(
                f"queued {queued} + running {running} = {pending}, but the history has {want.pending}{maybe}"
                f" pending ({len(acknowledged(history))} acknowledged − {want.succeeded} succeeded"
                f" − {want.exhausted} out of attempts)"
            )
    dead, failed = stats.get("dead"), stats.get("failed")
    if (dead is not None or failed is not None) and (dead or 0) + (failed or 0) != want.exhausted:
        found.append(f"dead {dead} + failed {failed}, but {want.exhausted} jobs are out of attempts")
    return found


def check(
    history: History,
    *,
    order: str | None = None,  # None, "fifo" or "priority"
    retries: bool = False,
    min_backoff_s: float = 0.0,
    delay_tolerance_s: float = 0.0,
    delay_late_s: float | None = None,  # None: lateness not judged
) -> Report:
    runs = runs_by_job(history)
    acked = acknowledged(history)
    latencies = []
    for i, item in acked.items():
        if runs.get(i):
            latencies.append(max(0.0, runs[i][0].start - item.sent_at - item.delay_ms / 1000))
    stuck = None
    if history.stats is not None:
        stuck = int(history.stats.get("queued") or 0) + int(history.stats.get("running") or 0)
    return Report(
        acknowledged=len(acked),
        succeeded=len(succeeded_ids(runs) & set(acked)),
        executions=len(history.executions),
        lost=lost(history, runs),
        unexpected=unexpected(history, runs),
        duplicated=duplicated(runs),
        overlaps=overlaps(runs),
        order_inversions=order_inversions(history, runs, order) if order in ("fifo", "priority") else 0,
        attempt_violations=attempt_violations(history, runs) if retries else {},
        backoff_violations=backoff_violations(history, runs, min_backoff_s) if retries else {},
        delay_violations=delay_violations(history, runs, delay_tolerance_s),
        stuck=stuck,
        malformed=len(history.malformed),
        latency_s={f"p{q}": percentile(latencies, q) for q in (50, 95, 99)},
        late_delays=late_delays(history, runs, delay_late_s) if delay_late_s is not None else {},
    )


@dataclass(frozen=True)
class PreviousWorker:
    """One N-1 worker of the upgrade scenario, as the harness saw it."""

    name: str
    ended: int | None  # its exit code, if it ended on its own while the harness still ran it
    stopped: int | None  # the exit code of the harness's graceful stop (None: it had ended)
    starts_after: int  # jobs it started once N's migration had finished


def upgrade_problems(workers: Iterable[PreviousWorker], documented_exit: int | None) -> list[str]:
    """N-1's workers through N's migration: each either keeps working (it starts jobs after the
    migration, and stops cleanly when asked) or ends with the exit code its SDK documents for a
    schema it no longer supports (`documented_exit`). Any other end is a crash; a worker that
    stays up but runs nothing more has silently stalled. Empty when all is as documented."""
    found = []
    for w in workers:
        if w.ended is not None:
            if w.ended != documented_exit:
                said = f"documents exit {documented_exit}" if documented_exit is not None else "says N-1 keeps working"
                found.append(f"{w.name} (N-1) exited {w.ended} during the upgrade; its SDK {said}")
            continue
        if w.starts_after == 0:
            found.append(f"{w.name} (N-1) stayed up but started no job after the migration")
        if w.stopped not in (0, None):
            found.append(f"{w.name} (N-1) exited {w.stopped} when stopped after the upgrade")
    return found


def starts_since(history: History, since: float) -> dict[str, int]:
    """Executions each worker started at or after wall time `since`."""
    found: dict[str, int] = defaultdict(int)
    for e in history.executions:
        if e.start >= since:
            found[e.worker] += 1
    return dict(found)


# --- periodic jobs: executions named after the tick they were scheduled for ---------------

PERIODIC_PREFIX = "periodic-"  # a periodic execution's id: "periodic-<its tick, Unix seconds>"


def periodic_tick(job_id: str) -> int | None:
    """The tick a periodic execution's id names; None for an id that names none."""
    if not job_id.startswith(PERIODIC_PREFIX):
        return None
    try:
        return int(job_id[len(PERIODIC_PREFIX) :])
    except ValueError:
        return None


def runs_by_tick(history: History) -> dict[int, list[Execution]]:
    """Each tick's executions, in the order they started."""
    return {tick: runs for i, runs in runs_by_job(history).items() if (tick := periodic_tick(i)) is not None}


def not_ticks(history: History) -> list[str]:
    """Executions whose id names no tick: the periodic job ran as something else."""
    return sorted({r.id for r in history.executions if periodic_tick(r.id) is None})


def ticks_run_twice(ticks: Mapping[int, list[Execution]]) -> dict[int, int]:
    """Ticks started more than once (by any workers, whatever the outcome)."""
    return {tick: len(runs) for tick, runs in ticks.items() if len(runs) > 1}


def ticks_missed(ticks: Mapping[int, list[Execution]], every_s: int, first: float, last: float) -> list[int]:
    """The grid ticks (multiples of `every_s`) in [first, last] that never started: each of
    them elapsed while the workers ran and had time to run."""
    due = range(math.ceil(first / every_s) * every_s, math.floor(last / every_s) * every_s + 1, every_s)
    return [tick for tick in due if tick not in ticks]


def ticks_off_grid(ticks: Mapping[int, list[Execution]], every_s: int, earliest: float, latest: float) -> list[int]:
    """Ticks that are no multiple of `every_s`, or outside [earliest, latest]: not occurrences
    of the schedule the workers were given while they ran."""
    return sorted(t for t in ticks if t % every_s or not earliest <= t <= latest)


def tick_lateness(ticks: Mapping[int, list[Execution]]) -> dict[int, float]:
    """How long after its tick each tick first started, in seconds (negative: early)."""
    return {tick: round(runs[0].start - tick, 3) for tick, runs in ticks.items()}


def in_flight_at(history: History, at: float) -> int:
    """Executions started before wall time `at` and not ended by then (or never)."""
    return sum(1 for e in history.executions if e.start < at and (e.end is None or e.end > at))
