"""The generator: builds job specs, enqueues them through a driver while recording each
invocation's outcome, runs workers, waits (always bounded) and hands the history to the
checker. Scenarios say *what* to do; this says *how*, the same way for every SDK."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gauntlet.checker import Enqueued, History, Report, check
from gauntlet.driver import Driver, DriverError, EnqueueResult, Worker

WORKER_OPTIONS = {"visibility_timeout_s": 2, "poll_interval_ms": 20}


@dataclass
class Workload:
    driver: Driver
    folder: Path
    seed: int
    enqueued: dict[str, Enqueued] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    record: Any = None  # pytest's record_property: the checker's figures go on the test case
    worker_driver: Driver | None = None  # an insert-only SDK's jobs are worked by the SDK it names

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.history_path = self.folder / "history.jsonl"
        self._serial = 0

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
        history = History()
        for item in self.enqueued.values():
            history.add_enqueued(item)
        history.add_file(self.history_path)
        return history

    def wait_until_done(self, bound_s: float = 60.0, settle_s: float = 0.0, idle_s: float = 6.0) -> bool:
        """Until every acknowledged job has a successful execution (then `settle_s` more, for
        duplicates to show); or until nothing has happened for `idle_s` (longer than any
        visibility timeout or retry backoff the scenarios set), or the bound. The checker then
        says what is missing. Returns whether everything ran."""
        deadline = time.monotonic() + bound_s
        wanted = {i for i, e in self.enqueued.items() if e.outcome == "ok"}
        last_size, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            history = self.history()
            done = {r.id for r in history.executions if r.outcome == "ok"}
            if wanted <= done:
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

    def wait_for_starts(self, count: int, bound_s: float = 30.0) -> bool:
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            if len(self.history().executions) >= count:
                return True
            time.sleep(0.05)
        return False

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
        history = self.history()
        if with_stats:
            history.stats = self.driver.stats()
        report = check(history, **check_options)
        report.notes = self.worker_errors()
        if self.record is not None:
            for key, value in report.summary().items():
                if key != "latency_s":
                    self.record(key, value)
            for key, value in report.latency_s.items():
                self.record(f"latency_{key}_s", None if value is None else round(value, 4))
        return report


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
