"""A chaos wave: jobs enqueued directly, workers through the proxy, faults applied and healed
on a seeded schedule, then a bounded drain. Judged by the checker plus recovery time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from chaos.nemesis import Fault
from chaos.schedule import Schedule
from e2e.workload import Workload
from gauntlet.checker import Report
from gauntlet.driver import Driver

JOBS = 600
SLEEP_MS = 50
WORKERS = 2
CONCURRENCY = 2
PROGRESS_BOUND_S = 10.0  # a worker that runs nothing before any fault: no chaos to judge
RESUME_BOUND_S = 15.0  # after the last heal, a connection-level fault leaves nothing to wait for but reconnects


@dataclass
class Outcome:
    report: Report
    recovery_s: float | None  # first success after the last heal; None = never resumed
    progressed: bool


def run(
    workload: Workload,
    worker_driver: Driver,
    schedule: Schedule,
    make_fault: Callable[[], Fault],
    jobs: int = JOBS,
) -> Outcome:
    workload.enqueue(workload.specs(jobs, sleep_ms=SLEEP_MS))
    workload.start(WORKERS, concurrency=CONCURRENCY, driver=worker_driver)
    started = time.monotonic()
    if not _first_success(workload, PROGRESS_BOUND_S):
        workload.stop_all()
        return Outcome(workload.report(), None, progressed=False)
    healed_at = time.time()
    faults = []
    for window in schedule.windows:
        _sleep_until(started + window.start_s)
        fault = make_fault()
        applied_at = time.time()
        fault.apply()
        try:
            faults.append(fault.describe())
            time.sleep(window.duration_s)
        finally:  # an interrupt mid-window must not leave the fault for the scenarios after it
            fault.heal()
        healed_at = time.time()
        workload.faults.append({**faults[-1], **asdict(window), "applied": applied_at, "healed": healed_at})
    workload.record("fault_schedule", schedule.to_json())
    workload.record("faults", str(faults))
    bound = recovery_bound_s(workload)
    workload.wait_until_done(bound + jobs * SLEEP_MS / 1000, settle_s=1.0, idle_s=bound)
    workload.stop_all()
    report = workload.report()
    dead = [w.name for w in workload.workers if w.helper.popen.returncode not in (None, 0, -15)]
    if dead:
        report.notes.insert(0, f"worker process(es) {', '.join(dead)} died during the wave")
    after = sorted(r.end for r in workload.history().executions if r.outcome == "ok" and r.end and r.end > healed_at)
    remaining = report.acknowledged - report.succeeded
    recovery = round(after[0] - healed_at, 3) if after else (0.0 if remaining == 0 else None)
    workload.record("recovery_s", recovery)
    return Outcome(report, recovery, progressed=True)


def recovery_bound_s(workload: Workload) -> float:
    """After the heal, jobs cut mid-flight may wait for the contract's recovery (a rescuer's
    period, a lease) before they run again: the longer of that and a reconnect."""
    return max(RESUME_BOUND_S, workload.recovery_bound_s())


def _first_success(workload: Workload, bound_s: float) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if any(r.outcome == "ok" for r in workload.history().executions):
            return True
        time.sleep(0.05)
    return False


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))
