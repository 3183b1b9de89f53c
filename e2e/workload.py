"""The generator: builds job specs, enqueues them through a driver while recording each
invocation's outcome, runs workers, waits (always bounded) and hands the history to the
checker. Scenarios say *what* to do; this says *how*, the same way for every SDK."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gauntlet import evidence
from gauntlet.catalog import Contract
from gauntlet.checker import Enqueued, GrowingFile, History, Report, check, stats_mismatch
from gauntlet.driver import Driver, DriverError, EnqueueResult, Worker

WORKER_OPTIONS = {"visibility_timeout_s": 2, "poll_interval_ms": 20}
LEASE_S = float(WORKER_OPTIONS["visibility_timeout_s"])
MARGIN_S = 5.0  # added to every bound the contract declares: scheduling noise on a loaded 2-core machine
WAIT_CAP_S = 120.0  # no single wait is longer; a contract bound beyond it is reported, not waited out
REDELIVERY = ("duplicated", "overlaps")  # what an at-least-once contract allows after a fault
# The harness's own timing slack, never a system's: an acknowledgement reaches the harness one
# pipe write after the SDK fixed the job's time (a delayed job can look this much early), and
# two processes' readings of this host's clock around a retry may differ by a scheduling tick.
ACK_SLACK_S = 0.25
CLOCK_SLACK_S = 0.1
# Scheduling noise on a loaded 2-core machine, on top of a delayed job's declared lateness.
LATE_SLACK_S = 0.5
STATS_BOUND_S = 3.0  # how long readings may take to agree with a history that no longer moves


@dataclass
class Workload:
    driver: Driver
    folder: Path
    seed: int
    contract: Contract
    enqueued: dict[str, Enqueued] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    record: Any = None  # pytest's record_property: the checker's figures go on the test case
    worker_driver: Driver | None = None  # an insert-only SDK's jobs are worked by the SDK it names
    faults: list[dict[str, Any]] = field(default_factory=list)  # a wave's fault windows, wall times (chaos/wave.py)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.history_path = self.folder / "history.jsonl"
        self._live = History()
        self._growing = GrowingFile(self.history_path)
        self._serial = 0
        self.stats_problems: list[str] = []  # readings that disagreed with the history (compare_stats)
        self.refusals: list[str] = []  # the SDK's errors for specs it did not acknowledge
        self.judged: tuple[Report, str | None] | None = None  # the last report and its order, for the evidence

    def specs(self, count: int, **behaviour: Any) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            self._serial += 1
            out.append(
                {"id": f"j{self.seed % 100000:05d}-{self._serial:05d}", "payload": {"n": self._serial}, **behaviour}
            )
        return out

    def enqueue(
        self, specs: Iterable[dict[str, Any]], transaction: str | None = None, driver: Driver | None = None
    ) -> EnqueueResult:
        """Enqueue and record each invocation's outcome; a driver that breaks down mid-way
        leaves the rest indeterminate and raises its error once they are recorded."""
        specs = list(specs)
        sent_at = time.time()
        result = (driver or self.driver).enqueue(specs, transaction=transaction)
        acked_at = {a.id: a.at for a in result.acks if a.ok and a.id is not None}
        self.refusals += [f"{a.id}: {a.error}" for a in result.acks if not a.ok]
        for spec in specs:
            self.enqueued[spec["id"]] = Enqueued(
                spec["id"],
                result.outcome(spec["id"]),
                sent_at,
                index=len(self.enqueued),
                priority=int(spec.get("priority") or 0),
                delay_ms=int(spec.get("delay_ms") or 0),
                max_attempts=spec.get("max_attempts"),
                fail_times=int(spec.get("fail_times") or 0),
                acked_at=acked_at.get(spec["id"]),
            )
        if result.error:
            raise DriverError(result.error)
        return result

    def start(self, count: int = 1, concurrency: int = 1, driver: Driver | None = None, **options: Any) -> list[Worker]:
        started = []
        for _ in range(count):
            name = f"w{len(self.workers) + 1}"
            worker = (driver or self.worker_driver or self.driver).start_worker(
                name, self.history_path, concurrency=concurrency, **{**WORKER_OPTIONS, **options}
            )
            self.workers.append(worker)
            started.append(worker)
        return started

    def history(self) -> History:
        """The history so far, brought up to date by reading only what the workers appended
        since the last call. It is one live object: take what you need from it before the
        next call. `report` reads the whole file afresh."""
        self._live.enqueued = {}
        for item in self.enqueued.values():
            self._live.add_enqueued(item)
        self._live.add_lines(self._growing.new_lines())
        return self._live

    def _full_history(self) -> History:
        history = History()
        for item in self.enqueued.values():
            history.add_enqueued(item)
        history.add_file(self.history_path)
        return history

    def recovery_bound_s(self) -> float:
        """How long after a worker's death its job may take to run again: the contract's
        worst case for the lease the harness sets, plus the margin. A contract whose bound is
        beyond what any run waits (hours) cannot recover within the run, however long it
        waits: then only the quiet bound, and the cell's note says why."""
        declared = self.contract.recovery_bound_s(LEASE_S) + MARGIN_S
        return declared if declared <= WAIT_CAP_S else self.quiet_bound_s()

    def recovery_note(self) -> str:
        """Says so when the contract's own bound is longer than any run waits."""
        declared = self.contract.recovery_bound_s(LEASE_S)
        if declared + MARGIN_S <= WAIT_CAP_S:
            return ""
        return (
            f" (the contract's recovery bound, {declared:g} s: {self.contract.recovery},"
            f" is beyond the {WAIT_CAP_S:g} s a run waits)"
        )

    def quiet_bound_s(self) -> float:
        """How long a healthy run may show no progress: a retry's longest backoff or a lease, plus the margin."""
        return max(self.contract.retry_max_gap_s, LEASE_S) + MARGIN_S

    def judge(self, report: Report, *properties: str, redelivery: bool = False) -> None:
        """The one rule for every scenario: after a fault that can make a job run again
        (`redelivery`), an at-least-once contract allows duplicates and overlaps (they stay
        figures on the cell); anywhere else they fail it."""
        allowed = REDELIVERY if redelivery and self.contract.at_least_once else ()
        # Properties over acknowledged jobs hold of none at all: a scenario whose every job the
        # SDK refused has judged nothing, and says so instead of passing.
        assert report.acknowledged or not self.enqueued, (
            f"the SDK acknowledged none of the {len(self.enqueued)} jobs sent: nothing to judge"
            + (f" (first refusal: {self.refusals[0][:300]})" if self.refusals else "")
        )
        assert_holds(report, *(p for p in properties if p not in allowed))

    def wait_until_done(self, bound_s: float = 60.0, settle_s: float = 0.0, idle_s: float | None = None) -> bool:
        """Until every acknowledged job has a successful execution (then `settle_s` more, for
        duplicates to show); or until nothing has happened for `idle_s` (default: the
        contract's quiet bound), or the bound. The checker then says what is missing.
        Returns whether everything ran."""
        idle_s = self.quiet_bound_s() if idle_s is None else idle_s
        deadline = time.monotonic() + bound_s
        wanted = {i for i, e in self.enqueued.items() if e.outcome == "ok"}
        last_size, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            history = self.history()
            done = {r.id for r in history.executions if r.outcome == "ok"}
            if wanted <= done:
                self.wait_until_recorded(min(self.recovery_bound_s(), max(0.0, deadline - time.monotonic())))
                time.sleep(settle_s)
                return True
            if self.workers and not any(w.alive() for w in self.workers):
                return False  # every worker process is gone: nothing more will happen
            size = self.history_path.stat().st_size if self.history_path.exists() else 0
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            elif time.monotonic() - last_change > idle_s:
                return False
            time.sleep(0.1)
        return False

    def wait_until_recorded(self, bound_s: float) -> None:
        """A job the history shows done may not be recorded as done yet (a batched completer, a
        completion cut by a fault and left to the contract's recovery): with the workers still
        running, wait until the system's own stats show nothing queued or running, at most the
        contract's recovery bound. What is left then is `stuck`."""
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            try:
                stats = self.driver.stats()
            except DriverError:
                return  # the checker reads stats again and says what is wrong
            if not (stats["queued"] or 0) + (stats["running"] or 0):
                return
            if self.workers and not any(w.alive() for w in self.workers):
                return
            time.sleep(0.2)

    def wait_for_starts(self, count: int, bound_s: float = 30.0) -> bool:
        return self.wait_for(lambda history: len(history.executions) >= count, bound_s)

    def wait_for(self, condition: Callable[[History], bool], bound_s: float) -> bool:
        """Until the history satisfies `condition` (True), or the bound (False)."""
        deadline = time.monotonic() + bound_s
        while True:
            if condition(self.history()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def compare_stats(
        self, moment: str, while_: Callable[[History], bool] | None = None, bound_s: float = STATS_BOUND_S
    ) -> bool:
        """Reads the system's stats (its query in system.toml) while jobs are pending and
        compares them with the history read just before and just after (checker.stats_mismatch);
        a reading counts only if the history did not move meanwhile. Stops at the first reading
        that agrees (a completion the SDK records a moment after the worker's end line only
        delays it), when `while_` no longer holds (the moment is over), or at the bound; the
        last disagreement is then kept for the `stats_mismatches` property. Returns whether they
        agreed."""
        deadline = time.monotonic() + bound_s
        last: list[str] = []
        readings = 0
        while True:
            history = self.history()
            if while_ is not None and not while_(history):
                break
            before = _moves(history)
            stats = self.driver.stats()
            history = self.history()
            if before == _moves(history):
                readings += 1
                last = stats_mismatch(history, stats)
                if not last:
                    self._record_stats(moment, "agree")
                    return True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if last:
            self.stats_problems.append(f"{moment}: {'; '.join(last)}")
            self._record_stats(moment, "disagree")
        else:
            self._record_stats(moment, f"not compared ({readings} readings: the moment passed)")
        return False

    def _record_stats(self, moment: str, verdict: str) -> None:
        if self.record is not None:
            self.record(f"stats {moment}", verdict)

    def stop_all(self) -> None:
        errors = []
        for worker in self.workers:
            try:
                worker.stop()
            except Exception as exc:  # keep stopping the others; report after
                errors.append(str(exc))
        if errors:
            raise AssertionError("; ".join(errors))

    def worker_errors(self, limit: int = 3) -> list[str]:
        """Distinct error lines the workers logged: the why behind a lost or stuck job."""
        seen: list[str] = []
        for worker in self.workers:
            for raw in worker.helper.log_text().splitlines():
                line = raw.strip()
                if ("error" in line.lower() or "exception" in line.lower()) and line not in seen:
                    seen.append(line[:300])
        return seen[:limit]

    def report(self, with_stats: bool = True, **check_options: Any) -> Report:
        history = self._full_history()
        if with_stats:
            history.stats = self.driver.stats()
        report = check(history, **check_options)
        report.notes = self.worker_errors()
        report.stats_mismatches = list(self.stats_problems)
        self.judged = (report, check_options.get("order"))
        if self.record is not None:
            for key, value in report.summary().items():
                if key != "latency_s":
                    self.record(key, value)
            for key, value in report.latency_s.items():
                self.record(f"latency_{key}_s", None if value is None else round(value, 4))
        return report

    def save_evidence(self, path: Path, cell: dict[str, str], test: str, recovery_s: float | None) -> None:
        """The scenario's evidence file (gauntlet/evidence.py) for its cell's page; nothing when
        it enqueued nothing."""
        history = self._full_history()
        if not history.enqueued and not history.executions:
            return
        report, order = self.judged or (None, None)
        errors = self.worker_errors(evidence.ERRORS)
        kept = evidence.build(cell, test, self.seed, history, report, order, self.faults, errors, recovery_s)
        evidence.write(path, kept)


def _moves(history: History) -> tuple[int, int]:
    """How far the history has got: starts and ends seen."""
    return len(history.executions), sum(1 for r in history.executions if r.end is not None)


def violations(report: Report, *properties: str) -> list[str]:
    """What the report says against each named property, in words a cell can show."""
    found = []
    for name in properties:
        value = getattr(report, name)
        if name == "stuck":
            if value:
                found.append(f"stuck {value}: jobs still queued or running after the drain")
        elif name == "order_inversions":
            if value:
                found.append(f"order_inversions {value}: pairs of jobs ran out of the expected order")
        elif name == "malformed":
            if value:
                found.append(f"malformed {value}: history lines the driver wrote are not protocol lines")
        elif name == "stats_mismatches":
            if value:
                found.append(f"stats_mismatches {len(value)}: the system's stats disagree with the history: {value}")
        elif name == "late_delays":
            if value:
                found.append(
                    f"late_delays {len(value)}: delayed jobs started later than the contract allows (s): "
                    f"{list(value.items())[:5]}"
                )
        elif name == "backoff_violations":
            if value:
                found.append(
                    f"backoff_violations {len(value)}: retried sooner than the retry policy allows"
                    f" (gap in s): {list(value.items())[:5]}"
                )
        elif value:
            items = list(value.items()) if isinstance(value, dict) else list(value)
            found.append(f"{name} {len(items)}: {items[:5]}")
    return found


EXACTLY_ONCE = ("lost", "unexpected", "duplicated", "overlaps", "malformed")


def assert_holds(report: Report, *properties: str) -> None:
    broken = violations(report, *properties)
    if broken and report.notes:
        broken.append("worker said: " + " | ".join(report.notes))
    assert not broken, "; ".join(broken)
